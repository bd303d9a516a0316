"""The DMD LoRA: target list, key spellings, merge == unmerged forward, loud failures."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from avatar_batch.core.errors import WeightsError
from avatar_batch.render.liveavatar.checkpoint.tiny import random_dit
from avatar_batch.render.liveavatar.config import CONFIG_TINY
from avatar_batch.render.liveavatar.dit import BlockInputs
from avatar_batch.render.liveavatar.lora import (
    lora_targets,
    merge_lora,
    parse_lora_key,
    random_lora,
    write_lora_file,
)
from tests.render.liveavatar.conftest import reference_manifest

RANK = 8


@pytest.fixture()
def model():
    return random_dit(CONFIG_TINY.dit, seed=3, dtype=torch.float32)


@pytest.fixture()
def adapters(model):
    return random_lora(lora_targets(model), rank=RANK, seed=4, dtype=torch.float32)


def test_targets_of_the_tiny_dit(model):
    names = [t.module for t in lora_targets(model)]
    # 3 blocks x (4 self + 4 cross + 2 ffn) + 2 audio injectors x 4
    assert len(names) == 38
    assert "blocks.0.ffn.0" in names and "audio_injector.injector.1.o" in names
    assert not any("adain" in n or "norm" in n or "embedding" in n for n in names)


def test_every_reference_key_parses_to_a_14b_target():
    reference = reference_manifest("lora_keys.json")
    modules = {parse_lora_key(key)[0] for key, _, _ in reference["tensors"]}
    assert modules == set(reference["target_modules"])
    assert parse_lora_key("base_model.model.blocks.3.ffn.2.lora_B.weight") == ("blocks.3.ffn.2", "B")
    assert parse_lora_key("blocks.3.ffn.2.lora_up.weight") is None


@pytest.mark.parametrize("spelling", ["peft", "peft_prefixed", "plain"])
def test_merged_layer_equals_unmerged_path(model, adapters, tmp_path, spelling):
    x = torch.randn(5, 128)
    layer = model.blocks[1].ffn[0]
    a, b = adapters["blocks.1.ffn.0"]
    alpha = 4.0
    unmerged = F.linear(x, layer.weight, layer.bias) + (alpha / RANK) * (x @ a.T @ b.T)
    write_lora_file(tmp_path / "lora.safetensors", adapters, spelling)
    assert merge_lora(model, tmp_path / "lora.safetensors", alpha=alpha) == 38
    torch.testing.assert_close(layer(x), unmerged, rtol=1e-5, atol=1e-6)


def test_merged_model_equals_unmerged_forward(model, adapters, tmp_path):
    """Whole denoising call: base weights + 0.5 * B A x on every target == merged weights."""
    handles = []
    modules = dict(model.named_modules())
    for name, (a, b) in adapters.items():

        def hook(_module, inputs, output, a=a, b=b):
            return output + (64.0 / RANK) * (inputs[0] @ a.T @ b.T)

        handles.append(modules[name].register_forward_hook(hook))
    unmerged = denoise_once(model)
    for h in handles:
        h.remove()
    base = denoise_once(model)
    write_lora_file(tmp_path / "lora.safetensors", adapters)
    merge_lora(model, tmp_path / "lora.safetensors")  # alpha 64 default
    merged = denoise_once(model)
    assert not torch.allclose(base, unmerged, atol=1e-3)  # the adapters matter
    torch.testing.assert_close(merged, unmerged, rtol=1e-4, atol=1e-4)


def denoise_once(model):
    g = torch.Generator().manual_seed(0)
    context = model.embed_text(torch.randn(6, 4096, generator=g))
    cond = model.new_cond_cache(64, 64)
    step = model.new_step_caches(64, 64, 1)[0]
    model.prefill_sink(torch.randn(16, 1, 8, 8, generator=g), torch.randn(16, 19, 8, 8, generator=g), context, cond)
    block = BlockInputs(torch.randn(16, 3, 8, 8, generator=g), 857.7, torch.randn(25, 32, 12, generator=g), 0, 10)
    return model.denoise_block(block, step, cond)


def test_bf16_merge_rounds_once_from_fp32(tmp_path):
    model = random_dit(CONFIG_TINY.dit, seed=5, dtype=torch.bfloat16)
    adapters = random_lora(lora_targets(model), rank=RANK, seed=6, dtype=torch.bfloat16)
    w = model.blocks[0].self_attn.q.weight.clone()
    a, b = adapters["blocks.0.self_attn.q"]
    write_lora_file(tmp_path / "l.safetensors", adapters)
    merge_lora(model, tmp_path / "l.safetensors")
    expected = (w.float() + (b.float() @ a.float()) * (64.0 / RANK)).bfloat16()
    assert torch.equal(model.blocks[0].self_attn.q.weight, expected)


def _error(model, tmp_path, tensors) -> WeightsError:
    from safetensors.torch import save_file

    path = tmp_path / "bad.safetensors"
    save_file(tensors, str(path))
    before = model.blocks[0].self_attn.q.weight.clone()
    with pytest.raises(WeightsError) as info:
        merge_lora(model, path)
    assert torch.equal(model.blocks[0].self_attn.q.weight, before)  # nothing merged
    assert str(path) in str(info.value)
    return info.value


def _tensors(adapters):
    out = {}
    for module, (a, b) in adapters.items():
        out[f"{module}.lora_A.default.weight"] = a
        out[f"{module}.lora_B.default.weight"] = b
    return out


def test_partial_coverage_is_refused(model, adapters, tmp_path):
    tensors = _tensors(adapters)
    del tensors["blocks.2.ffn.2.lora_B.default.weight"]
    err = _error(model, tmp_path, tensors)
    assert "blocks.2.ffn.2.lora_B" in str(err) and "missing" in str(err)


def test_foreign_spelling_is_refused(model, adapters, tmp_path):
    tensors = {
        k.replace("lora_A.default", "lora_down").replace("lora_B.default", "lora_up"): v
        for k, v in _tensors(adapters).items()
    }
    err = _error(model, tmp_path, tensors)
    assert "lora_down.weight" in str(err) and "unknown tensor" in str(err)
    assert "missing LoRA tensor" in str(err)
    assert len(err.problems) == 12  # 5 of each kind + one count line per kind


def test_unknown_module_and_wrong_shape_are_refused(model, adapters, tmp_path):
    tensors = _tensors(adapters)
    tensors["head.head.lora_A.default.weight"] = torch.zeros(RANK, 128)
    tensors["blocks.0.ffn.0.lora_B.default.weight"] = torch.zeros(255, RANK)
    err = _error(model, tmp_path, tensors)
    text = str(err)
    assert "head.head.lora_A.default.weight" in text
    assert "blocks.0.ffn.0.lora_B.default.weight" in text and "[256, 8]" in text


def test_missing_file_is_a_weights_error(model, tmp_path):
    with pytest.raises(WeightsError, match="missing"):
        merge_lora(model, tmp_path / "nope.safetensors")
