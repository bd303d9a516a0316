"""umT5 text encoder: manifest vs the reference dump, tiny write/load/encode,
size inference, loud checkpoint errors, and numeric parity with a direct
re-implementation of the Wan T5 encoder."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from avatar_batch.core.errors import WeightsError
from avatar_batch.render.liveavatar.checkpoint.sizes import infer_t5_sizes
from avatar_batch.render.liveavatar.config import CONFIG_TINY, DiTConfig, T5Sizes
from avatar_batch.render.liveavatar.text_encoder import (
    T5_FILENAME,
    TextEncoder,
    _umt5_config,
    expected_t5_tensors,
    load_pth,
    load_text_encoder,
    pth_shapes,
    t5_key_map,
    write_tiny_t5,
)
from avatar_batch.render.liveavatar.tokenizer import (
    TOKENIZER_FILE,
    TOKENIZER_SUBDIR,
    clean_text,
    load_tokenizer,
    tokenize,
)
from tests.render.liveavatar.conftest import reference_manifest

TINY = CONFIG_TINY.t5


@pytest.fixture(scope="module")
def reference() -> dict:
    return reference_manifest("t5_state_dict.json")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("t5")
    write_tiny_t5(folder, TINY, seed=7)
    return folder


@pytest.fixture(scope="module")
def encoder(tiny_dir):
    return load_text_encoder(tiny_dir, device="cpu", dtype=torch.float32)


# --- manifest and key map -------------------------------------------------------------


def test_manifest_equals_reference_for_released_sizes(reference):
    mine = [[key, list(shape), dtype] for key, shape, dtype in expected_t5_tensors(T5Sizes())]
    assert mine == reference["tensors"]
    assert len(mine) == reference["summary"]["num_tensors"] == 242
    assert sum(math.prod(shape) for _, shape, _ in mine) == reference["summary"]["num_params"]


def test_key_map_equals_reference(reference):
    assert t5_key_map(T5Sizes()) == reference["to_transformers_UMT5EncoderModel"]["key_map"]


def test_transformers_config_equals_reference(reference):
    config = _umt5_config(T5Sizes())
    for name, value in reference["to_transformers_UMT5EncoderModel"]["hf_config"].items():
        if name == "tie_word_embeddings":
            continue  # ties an LM head, which the encoder lacks; transformers >= 5 forces it True
        assert getattr(config, name) == value, name


def test_key_map_targets_exist_with_the_same_shapes_in_transformers():
    """Built on the meta device: the released sizes cost no memory."""
    from transformers import UMT5EncoderModel

    sizes = T5Sizes()
    with torch.device("meta"):
        model = UMT5EncoderModel(_umt5_config(sizes))
    target = {key: tuple(t.shape) for key, t in model.state_dict().items()}
    mapping = t5_key_map(sizes)
    mapped = {mapping[key]: shape for key, shape, _ in expected_t5_tensors(sizes)}
    mapped["encoder.embed_tokens.weight"] = mapped["shared.weight"]  # tied
    assert mapped == target


# --- tokenizer ------------------------------------------------------------------------


def test_clean_text_unescapes_twice_and_collapses_whitespace():
    assert clean_text("  a &amp;amp; b\n\t c  ") == "a & b c"
    assert clean_text("&amp;lt;hi&amp;gt;") == "<hi>"


def test_tiny_tokenizer_is_t5_shaped(tiny_dir):
    tokenizer = load_tokenizer(tiny_dir / TOKENIZER_SUBDIR)
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id) == (0, 1)
    assert len(tokenizer) <= TINY.vocab
    ids, mask = tokenize(tokenizer, ["Hi  there", "你好"], text_len=12)
    assert ids.shape == mask.shape == (2, 12)
    # "▁Hi▁there" is 1+2+1+5 pieces, then EOS; "▁你好" is 3 pieces, then EOS.
    assert mask.sum(dim=1).tolist() == [10, 4]
    assert ids[0, 9].item() == 1 and ids[0, 10:].tolist() == [0, 0]
    assert tokenizer.unk_token_id not in ids[1, :4].tolist()


def test_missing_tokenizer_folder_is_a_weights_error(tmp_path):
    with pytest.raises(WeightsError, match="umt5-xxl"):
        load_tokenizer(tmp_path / TOKENIZER_SUBDIR)


def test_missing_tokenizer_file_is_named(tiny_dir, tmp_path):
    folder = tmp_path / TOKENIZER_SUBDIR
    folder.mkdir(parents=True)
    for path in (tiny_dir / TOKENIZER_SUBDIR).iterdir():
        if path.name != TOKENIZER_FILE:
            (folder / path.name).write_bytes(path.read_bytes())
    with pytest.raises(WeightsError, match=TOKENIZER_FILE):
        load_tokenizer(folder)


# --- tiny round trip and size inference ------------------------------------------------


def test_encode_trims_each_prompt_to_its_mask_length(encoder):
    long_text = "word " * 1000
    out = encoder.encode(["Hello world", "你好", long_text])
    # "▁Hello▁world" = 12 pieces + EOS; "▁你好" = 3 + EOS; the long one is cut at text_len.
    assert [tuple(t.shape) for t in out] == [(13, TINY.dim), (4, TINY.dim), (TINY.text_len, TINY.dim)]
    assert all(torch.isfinite(t).all() for t in out)
    assert out[0].dtype == torch.float32


def test_same_prompt_same_features_regardless_of_batch(encoder):
    alone = encoder.encode(["a cat"])[0]
    batched = encoder.encode(["a much longer prompt about a dog", "a cat"])[1]
    torch.testing.assert_close(alone, batched, atol=1e-5, rtol=1e-5)


def test_sizes_are_read_from_tensor_shapes(encoder, tmp_path):
    assert encoder.sizes == TINY
    odd = T5Sizes(vocab=600, dim=48, dim_attn=24, dim_ffn=40, num_heads=3, num_layers=3, num_buckets=16)
    write_tiny_t5(tmp_path, odd, seed=1)
    path = tmp_path / T5_FILENAME
    assert infer_t5_sizes(path, pth_shapes(load_pth(path)), text_len=512) == odd
    loaded = load_text_encoder(tmp_path, device="cpu", dtype=torch.float32)
    assert loaded.sizes == odd
    assert loaded.encode(["x"])[0].shape == (3, 48)


def test_text_len_comes_from_the_dit_config(tiny_dir, tmp_path):
    for path in tiny_dir.rglob("*"):
        if path.is_file():
            target = tmp_path / path.relative_to(tiny_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    config = replace(DiTConfig(), text_len=8).to_json_dict()  # the official T5 is built with config.json's text_len
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    loaded = load_text_encoder(tmp_path, device="cpu", dtype=torch.float32)
    assert loaded.sizes == replace(TINY, text_len=8)
    assert loaded.encode(["one two three four five"])[0].shape == (8, TINY.dim)


# --- loud errors ----------------------------------------------------------------------


def _copy_with_state(tiny_dir: Path, target: Path, edit) -> Path:
    (target / TOKENIZER_SUBDIR).mkdir(parents=True)
    for path in (tiny_dir / TOKENIZER_SUBDIR).iterdir():
        (target / TOKENIZER_SUBDIR / path.name).write_bytes(path.read_bytes())
    state = dict(torch.load(tiny_dir / T5_FILENAME, weights_only=True))
    edit(state)
    torch.save(state, target / T5_FILENAME)
    return target / T5_FILENAME


def test_missing_checkpoint_file_is_named(tiny_dir, tmp_path):
    pth = _copy_with_state(tiny_dir, tmp_path, lambda state: None)
    pth.unlink()
    with pytest.raises(WeightsError, match=T5_FILENAME):
        load_text_encoder(tmp_path, device="cpu", dtype=torch.float32)


def test_truncated_checkpoint_file_is_named(tiny_dir, tmp_path):
    pth = _copy_with_state(tiny_dir, tmp_path, lambda state: None)
    pth.write_bytes(pth.read_bytes()[:5000])
    with pytest.raises(WeightsError, match="truncated") as caught:
        load_text_encoder(tmp_path, device="cpu", dtype=torch.float32)
    assert str(pth) in str(caught.value)


def test_renamed_key_names_file_and_both_keys(tiny_dir, tmp_path):
    def rename(state):
        state["blocks.1.attn.q.weight_old"] = state.pop("blocks.1.attn.q.weight")

    pth = _copy_with_state(tiny_dir, tmp_path, rename)
    with pytest.raises(WeightsError) as caught:
        load_text_encoder(tmp_path, device="cpu", dtype=torch.float32)
    message = str(caught.value)
    assert str(pth) in message
    assert "'blocks.1.attn.q.weight'" in message and "tensor missing" in message
    assert "'blocks.1.attn.q.weight_old'" in message and "unexpected tensor" in message


def test_wrong_shape_names_key_and_shapes(tiny_dir, tmp_path):
    def shrink(state):
        state["blocks.0.ffn.fc2.weight"] = state["blocks.0.ffn.fc2.weight"][:, :10].clone()

    _copy_with_state(tiny_dir, tmp_path, shrink)
    with pytest.raises(WeightsError, match=r"blocks\.0\.ffn\.fc2\.weight.*\[4096, 64\].*\[4096, 10\]"):
        load_text_encoder(tmp_path, device="cpu", dtype=torch.float32)


# --- numeric parity with the Wan T5 encoder --------------------------------------------


def _bucket(rel_pos: torch.Tensor, num_buckets: int, max_distance: int = 128) -> torch.Tensor:
    """Bidirectional T5 bucketing: half the buckets per direction, exact below
    num_buckets/4, logarithmic up to max_distance."""
    half = num_buckets // 2
    base = (rel_pos > 0).long() * half
    dist = rel_pos.abs()
    exact = half // 2
    log_part = exact + (torch.log(dist.float() / exact) / math.log(max_distance / exact) * (half - exact)).long()
    return base + torch.where(dist < exact, dist, log_part.clamp(max=half - 1))


def _wan_encoder(state: dict, ids: torch.Tensor, mask: torch.Tensor, sizes: T5Sizes) -> torch.Tensor:
    """Pre-RMSNorm blocks, per-layer relative bias, unscaled attention, padded
    keys set to the dtype minimum, FFN fc2(fc1(x) * gelu_tanh(gate(x)))."""

    def rms(x, weight):
        return weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)

    batch, length = ids.shape
    heads, head_dim = sizes.num_heads, sizes.dim_attn // sizes.num_heads
    x = state["token_embedding.weight"][ids]
    rel = torch.arange(length)[None, :] - torch.arange(length)[:, None]  # key - query
    buckets = _bucket(rel, sizes.num_buckets)
    for i in range(sizes.num_layers):

        def w(name: str, i: int = i) -> torch.Tensor:
            return state[f"blocks.{i}.{name}"]

        h = rms(x, w("norm1.weight"))
        q, k, v = ((h @ w(f"attn.{p}.weight").T).view(batch, length, heads, head_dim) for p in ("q", "k", "v"))
        bias = w("pos_embedding.embedding.weight")[buckets].permute(2, 0, 1)[None].expand(batch, -1, -1, -1)
        bias = bias.masked_fill(mask[:, None, None, :] == 0, torch.finfo(x.dtype).min)
        attn = torch.softmax(torch.einsum("binc,bjnc->bnij", q, k) + bias, dim=-1)
        x = x + torch.einsum("bnij,bjnc->binc", attn, v).reshape(batch, length, -1) @ w("attn.o.weight").T
        h = rms(x, w("norm2.weight"))
        gate = torch.nn.functional.gelu(h @ w("ffn.gate.0.weight").T, approximate="tanh")
        x = x + ((h @ w("ffn.fc1.weight").T) * gate) @ w("ffn.fc2.weight").T
    return rms(x, state["norm.weight"])


def test_transformers_path_matches_the_wan_encoder(encoder, tiny_dir):
    state = {k: v.float() for k, v in torch.load(tiny_dir / T5_FILENAME, weights_only=True).items()}
    texts = ["The quick brown fox", "hi"]
    ids, mask = tokenize(encoder.tokenizer, texts, 40)
    expected = _wan_encoder(state, ids, mask, TINY)
    short = TextEncoder(encoder.model, encoder.tokenizer, replace(TINY, text_len=40), encoder.device)
    got = short.encode(texts)
    for row, want, length in zip(got, expected, mask.sum(1).tolist()):
        torch.testing.assert_close(row, want[:length], atol=1e-5, rtol=1e-5)
