"""Checkpoint tooling: manifests vs the official dumps, tiny folders, strict loading,
verification without loading, model identity, and every kind of bad weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from avatar_batch.core.errors import WeightsError
from avatar_batch.render.liveavatar.checkpoint import (
    CheckpointLayout,
    expected_manifest,
    identity,
    load_dit,
    model_identity,
    verify_checkpoint,
    write_tiny_checkpoint,
)
from avatar_batch.render.liveavatar.checkpoint.tiny import random_dit_state
from avatar_batch.render.liveavatar.config import CONFIG_14B, CONFIG_TINY
from avatar_batch.render.liveavatar.lora import write_lora_file
from tests.render.liveavatar.conftest import reference_manifest

SHARD1 = "diffusion_pytorch_model-00001-of-00002.safetensors"
SHARD2 = "diffusion_pytorch_model-00002-of-00002.safetensors"


@pytest.fixture(scope="module")
def full_tiny(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny-full")
    write_tiny_checkpoint(root, seed=0)
    return root


@pytest.fixture(scope="module")
def dit_only(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny-dit")
    write_tiny_checkpoint(root, seed=0, encoders=False)
    return root


@pytest.fixture()
def copy_of(tmp_path):
    def make(source: Path) -> CheckpointLayout:
        shutil.copytree(source, tmp_path / "w")
        return CheckpointLayout.at(tmp_path / "w")

    return make


def errors(problems):
    return [p for p in problems if p.severity == "error"]


# --- manifests ---------------------------------------------------------------------


def test_14b_manifest_equals_the_official_dumps():
    manifest = expected_manifest(CONFIG_14B)  # DiT built on the meta device: no memory
    for part, name in (
        ("dit", "dit_state_dict"),
        ("lora", "lora_keys"),
        ("t5", "t5_state_dict"),
        ("vae", "vae_state_dict"),
    ):
        reference = reference_manifest(f"{name}.json")["tensors"]
        assert manifest[part] == reference, part
    assert (len(manifest["dit"]), len(manifest["lora"])) == (1260, 896)


# --- tiny folder, loading -------------------------------------------------------------


def test_tiny_folder_verifies_clean(full_tiny):
    assert verify_checkpoint(full_tiny) == []
    assert verify_checkpoint(full_tiny, "tiny") == []
    config = json.loads(CheckpointLayout.at(full_tiny).config_path.read_text())
    assert config["_class_name"] == "WanModel_S2V" and config["dim"] == 128


def test_strict_load_round_trip(dit_only):
    written = random_dit_state(CONFIG_TINY.dit, seed=0, dtype=torch.bfloat16)
    model = load_dit(dit_only, device="cpu", dtype=torch.float32, lora=False)
    state = model.state_dict()
    assert list(state) == list(written)
    for key, tensor in written.items():
        assert state[key].dtype == torch.float32
        assert torch.equal(state[key], tensor.float()), key
    assert not any(p.requires_grad for p in model.parameters()) and not model.training


def test_load_merges_the_lora_in_the_run_dtype(dit_only):
    layout = CheckpointLayout.at(dit_only)
    lora = load_file(str(layout.lora_path))
    base = load_dit(dit_only, device="cpu", dtype=torch.bfloat16, lora=False)
    merged = load_dit(dit_only, device="cpu", dtype=torch.bfloat16)
    a = lora["blocks.1.cross_attn.v.lora_A.default.weight"].float()
    b = lora["blocks.1.cross_attn.v.lora_B.default.weight"].float()
    w = base.blocks[1].cross_attn.v.weight
    expected = (w.float() + (b @ a) * 0.5).to(torch.bfloat16)
    assert torch.equal(merged.blocks[1].cross_attn.v.weight, expected)
    assert torch.equal(merged.head.head.weight, base.head.head.weight)  # not a target


# --- bad weights ------------------------------------------------------------------------


def _load_error(layout: CheckpointLayout, **kwargs) -> str:
    with pytest.raises(WeightsError) as info:
        load_dit(layout.root, device="cpu", dtype=torch.float32, **kwargs)
    return str(info.value)


def test_missing_shard(dit_only, copy_of):
    layout = copy_of(dit_only)
    layout.shard_path(SHARD2).unlink()
    text = _load_error(layout)
    assert SHARD2 in text and "shard is missing" in text
    assert any(SHARD2 in p.file for p in errors(verify_checkpoint(layout.root)))


def test_truncated_shard(dit_only, copy_of):
    layout = copy_of(dit_only)
    path = layout.shard_path(SHARD1)
    path.write_bytes(path.read_bytes()[:-1000])
    text = _load_error(layout)
    assert SHARD1 in text and "truncated" in text


def test_damaged_header(dit_only, copy_of):
    layout = copy_of(dit_only)
    path = layout.shard_path(SHARD1)
    path.write_bytes(path.read_bytes()[:100])
    assert "damaged safetensors header" in _load_error(layout)


def _rewrite_shard(layout: CheckpointLayout, name: str, edit) -> None:
    tensors = load_file(str(layout.shard_path(name)))
    edit(tensors)
    save_file(tensors, str(layout.shard_path(name)), metadata={"format": "pt"})


def _rewrite_index(layout: CheckpointLayout, edit) -> None:
    index = json.loads(layout.index_path.read_text())
    edit(index["weight_map"])
    layout.index_path.write_text(json.dumps(index))


def _shard_of(layout: CheckpointLayout, key: str) -> str:
    return json.loads(layout.index_path.read_text())["weight_map"][key]


def test_wrong_shape(dit_only, copy_of):
    layout = copy_of(dit_only)
    key = "blocks.2.ffn.0.weight"
    shard = _shard_of(layout, key)
    _rewrite_shard(layout, shard, lambda t: t.__setitem__(key, torch.zeros(255, 128, dtype=torch.bfloat16)))
    text = _load_error(layout)
    assert shard in text and key in text and "wrong shape" in text and "[256, 128]" in text


def test_missing_and_extra_keys(dit_only, copy_of):
    layout = copy_of(dit_only)
    gone, extra = "head.modulation", "blocks.0.self_attn.rotary.weight"
    shard = _shard_of(layout, gone)

    def edit(t):
        del t[gone]
        t[extra] = torch.zeros(3, dtype=torch.bfloat16)

    _rewrite_shard(layout, shard, edit)
    _rewrite_index(layout, lambda m: (m.pop(gone), m.__setitem__(extra, shard)))
    text = _load_error(layout)
    assert f"'{gone}'" in text and "missing tensor" in text
    assert f"'{extra}'" in text and "unexpected tensor" in text


def test_index_and_shards_disagree(dit_only, copy_of):
    layout = copy_of(dit_only)
    key = "trainable_cond_mask.weight"
    other = SHARD1 if _shard_of(layout, key) == SHARD2 else SHARD2
    _rewrite_index(layout, lambda m: m.__setitem__(key, other))
    text = _load_error(layout)
    assert "indexed tensor is not in this shard" in text and "not in the index" in text


def test_missing_or_broken_config(dit_only, copy_of):
    layout = copy_of(dit_only)
    layout.config_path.write_text("{not json")
    assert "config.json" in _load_error(layout)
    layout.config_path.unlink()
    assert "file is missing" in _load_error(layout)


def test_lora_with_foreign_spelling_or_partial_coverage(dit_only, copy_of):
    layout = copy_of(dit_only)
    tensors = load_file(str(layout.lora_path))
    save_file({k.replace(".lora_A.default.", ".lora_down."): v for k, v in tensors.items()}, str(layout.lora_path))
    text = _load_error(layout)
    assert str(layout.lora_path) in text and "lora_down" in text
    load_dit(layout.root, device="cpu", dtype=torch.float32, lora=False)  # the DiT alone still loads
    partial = {k: v for k, v in tensors.items() if not k.startswith("audio_injector.injector.1.")}
    save_file(partial, str(layout.lora_path))
    text = _load_error(layout)
    assert "missing LoRA tensor" in text and "audio_injector.injector.1.q.lora_A.default.weight" in text
    assert any("missing LoRA tensor" in p.message for p in verify_checkpoint(layout.root))


def test_lora_spellings_all_load(dit_only, copy_of):
    layout = copy_of(dit_only)
    reference = load_dit(layout.root, device="cpu", dtype=torch.float32).state_dict()
    tensors = load_file(str(layout.lora_path))
    adapters = {}
    for key, value in tensors.items():
        module, ab = key.split(".lora_")
        adapters.setdefault(module, [None, None])[0 if ab.startswith("A") else 1] = value
    write_lora_file(layout.lora_path, {m: tuple(ab) for m, ab in adapters.items()}, "peft_prefixed")
    again = load_dit(layout.root, device="cpu", dtype=torch.float32).state_dict()
    assert all(torch.equal(again[k], reference[k]) for k in reference)


def test_verify_reports_encoder_files(full_tiny, copy_of):
    layout = copy_of(full_tiny)
    layout.t5_path.write_bytes(layout.t5_path.read_bytes()[:5000])
    (layout.wav2vec2_dir / "preprocessor_config.json").unlink()
    shutil.rmtree(layout.tokenizer_dir)
    layout.vae_path.unlink()
    found = {(Path(p.file).name, p.message) for p in errors(verify_checkpoint(layout.root))}
    assert ("models_t5_umt5-xxl-enc-bf16.pth", "not a torch zip archive (truncated or wrong file)") in found
    assert ("preprocessor_config.json", "wav2vec2 file is missing") in found
    assert ("Wan2.1_VAE.pth", "file is missing") in found
    assert any(name == "umt5-xxl" for name, _ in found)


def test_verify_checks_pth_tensor_shapes(full_tiny, copy_of):
    layout = copy_of(full_tiny)
    state = torch.load(layout.vae_path, weights_only=True)
    state["conv1.weight"] = torch.zeros(1)
    del state["conv2.bias"]
    torch.save(state, layout.vae_path)
    found = {(p.entry, p.message) for p in errors(verify_checkpoint(layout.root))}
    assert ("conv1.weight", "wrong shape") in found and ("conv2.bias", "missing tensor") in found


def test_verify_against_a_named_architecture(full_tiny):
    problems = errors(verify_checkpoint(full_tiny, "14b"))
    assert any("is not the '14b' architecture" in p.message for p in problems)
    assert any(p.entry == "blocks.39.modulation" for p in problems)


def test_verify_reads_headers_only(full_tiny, monkeypatch):
    import safetensors

    def refuse(*args, **kwargs):
        raise AssertionError("verify must not open tensors")

    monkeypatch.setattr(safetensors, "safe_open", refuse)
    assert verify_checkpoint(full_tiny) == []


# --- identity ---------------------------------------------------------------------------


def test_model_identity_is_stable_cached_and_content_keyed(dit_only, copy_of, monkeypatch):
    layout = copy_of(dit_only)
    first = model_identity(layout.root)
    assert identity.digest_cache_path(layout.lora_path).is_file()

    def no_rehash(path):
        raise AssertionError("the cached LoRA digest should be reused")

    monkeypatch.setattr(identity, "file_sha256", no_rehash)
    assert model_identity(layout.root) == first
    monkeypatch.undo()
    tensors = load_file(str(layout.lora_path))
    key = next(iter(tensors))
    tensors[key] = tensors[key] * 2
    save_file(tensors, str(layout.lora_path))
    assert model_identity(layout.root) != first
    assert len(first) == 64 and int(first, 16) >= 0


def test_model_identity_needs_the_files(tmp_path):
    with pytest.raises(WeightsError, match="cannot identify"):
        model_identity(tmp_path)


def test_fp32_tiny_weights_give_one_dtype_warning_per_shard(tmp_path):
    write_tiny_checkpoint(tmp_path, dtype=torch.float32, encoders=False)
    problems = verify_checkpoint(tmp_path)
    warnings = [p for p in problems if p.severity == "warning"]
    assert len(warnings) == 2 and all(p.value == "float32" for p in warnings)
    assert all("Wan2.2-S2V-14B/diffusion_pytorch_model" not in p.file for p in errors(problems))
    model = load_dit(tmp_path, device="cpu", dtype=torch.bfloat16)
    assert model.dtype == torch.bfloat16


def test_an_unnamed_architecture_verifies_and_loads_from_its_own_config(tmp_path):
    from dataclasses import replace

    dit = replace(CONFIG_TINY.dit, num_layers=2, audio_inject_layers=(0, 1))
    write_tiny_checkpoint(tmp_path, replace(CONFIG_TINY, name="two-layer", dit=dit))
    assert verify_checkpoint(tmp_path) == []  # T5/VAE sizes read off their own files
    assert len(load_dit(tmp_path, device="cpu").blocks) == 2
    assert any("not the 'tiny' architecture" in p.message for p in verify_checkpoint(tmp_path, "tiny"))


def test_a_missing_fixture_fails_instead_of_skipping(tmp_path):
    from tests.render.liveavatar.conftest import FixtureMissing, fixture_file

    with pytest.raises(FixtureMissing, match="gone.json"):
        fixture_file(tmp_path / "gone.json")
