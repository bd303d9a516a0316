"""benchmarks/attention_compare.py: the shapes it claims, its fp32 reference and error
measure, and a tiny end-to-end run on the CPU where unavailable kernels are reported."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from avatar_batch.render.liveavatar.config import CONFIG_14B
from avatar_batch.render.liveavatar.dit.cache import DEFAULT_WINDOW_LATENT_FRAMES, TokenGrid
from avatar_batch.render.quality import rel_l2
from benchmarks import attention_compare as ac


@pytest.mark.parametrize("size, height_px, width_px", [("704*384", 384, 704), ("384*256", 256, 384)])
def test_the_token_counts_are_a_block_against_the_window_and_the_sink(size, height_px, width_px):
    grid = TokenGrid.from_pixels(height_px, width_px)
    q_tokens, kv_tokens = ac.SIZE_TOKENS[size]
    assert q_tokens == 3 * grid.tokens_per_frame
    assert kv_tokens == DEFAULT_WINDOW_LATENT_FRAMES * grid.tokens_per_frame + grid.sink_tokens
    assert (ac.HEADS, ac.HEAD_DIM) == (CONFIG_14B.dit.num_heads, CONFIG_14B.dit.head_dim) == (40, 128)


def test_shapes_cross_sizes_with_batches_and_tiny_replaces_the_sizes():
    shapes = ac.shapes_for(["704*384", "384*256"], [1, 4], tiny=False)
    assert [(s.size, s.batch, s.q_tokens, s.kv_tokens) for s in shapes] == [
        ("704*384", 1, 3168, 15312),
        ("704*384", 4, 3168, 15312),
        ("384*256", 1, 1152, 5568),
        ("384*256", 4, 1152, 5568),
    ]
    assert [s.size for s in ac.shapes_for(["704*384"], [1, 2], tiny=True)] == ["tiny", "tiny"]
    with pytest.raises(SystemExit, match="unknown size"):
        ac.shapes_for(["512*512"], [1], tiny=False)


def test_the_reference_is_softmax_attention_whatever_the_query_chunk():
    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, n, 3, 16, generator=gen, dtype=torch.bfloat16) for n in (37, 50, 50))
    want = F.scaled_dot_product_attention(*(x.double().transpose(1, 2) for x in (q, k, v))).transpose(1, 2)
    one_query_bytes = 3 * 50 * 4  # forces chunks of a single query
    assert ac.query_chunk(3, 50, one_query_bytes) == 1
    for max_scores_bytes in (one_query_bytes, 7 * one_query_bytes, ac.REFERENCE_SCORES_BYTES):
        got = ac.reference_attention(q, k, v, max_scores_bytes)
        assert got.dtype == torch.float32 and got.shape == q.shape
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)


def test_relative_l2_is_the_quality_metric_on_tensors():
    gen = torch.Generator().manual_seed(2)
    want = torch.randn(4, 5, 6, generator=gen)
    got = (want + 0.01 * torch.randn(4, 5, 6, generator=gen)).to(torch.bfloat16)
    assert ac.relative_l2(got, want) == pytest.approx(rel_l2(got.float().numpy(), want.numpy()), rel=1e-9)
    assert ac.relative_l2(want, want) == 0.0
    with pytest.raises(ValueError, match="all zeros"):
        ac.relative_l2(got, torch.zeros_like(want))
    with pytest.raises(ValueError, match="shapes differ"):
        ac.relative_l2(got[:1], want)


def test_cpu_timing_returns_one_time_per_call():
    calls = []
    times_ms = ac.time_calls_ms(lambda: calls.append(1) or torch.zeros(1), 4, 2, torch.device("cpu"))
    assert len(times_ms) == 4 and len(calls) == 6 and all(t >= 0 for t in times_ms)


def test_a_tiny_cpu_run_measures_sdpa_and_reports_what_cannot_run(tmp_path, monkeypatch):
    def unavailable(q, k, v):
        raise ImportError("No module named 'not_installed'")

    monkeypatch.setattr(ac, "CANDIDATES", {**ac.CANDIDATES, "unavailable": unavailable})
    out = tmp_path / "attention.json"
    ac.main(["--tiny", "--device", "cpu", "--iters", "2", "--warmup", "1", "--batches", "1,2", "--out", str(out)])
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["device"] == "cpu" and result["torch"] == torch.__version__
    assert result["command"].startswith("python3 -m benchmarks.attention_compare --tiny")
    assert [run["batch"] for run in result["runs"]] == [1, 2]
    for run in result["runs"]:
        by_name = {c["name"]: c for c in run["candidates"]}
        assert set(ac.CANDIDATES) <= set(by_name)
        sdpa = by_name["sdpa"]
        assert math.isfinite(sdpa["time_ms"]) and sdpa["time_ms"] > 0
        assert sdpa["rel_l2"] < 1e-2 and run["sdpa_rel_l2"] == sdpa["rel_l2"]
        assert sdpa["speedup_vs_sdpa"] == 1.0
        assert by_name["unavailable"] == {
            "name": "unavailable",
            "error": "ImportError: No module named 'not_installed'",
        }
        assert by_name["sdpa_cudnn"].keys() == {"name", "error"}  # no cuDNN on a CPU
        for candidate in run["candidates"]:
            assert ("error" in candidate) != ("time_ms" in candidate)


def test_e4m3_scaling_fills_the_range_and_the_descale_undoes_it():
    x = torch.linspace(-3.0, 5.0, 256, dtype=torch.bfloat16).view(1, 8, 4, 8)
    x8, descale = ac._to_e4m3(x)
    assert x8.dtype == torch.float8_e4m3fn and descale.shape == (1, 1, 1, 1)
    assert x8.float().abs().max().item() == ac.E4M3_MAX
    restored = (x8.float() * descale).numpy()
    assert rel_l2(restored, x.float().numpy()) < 0.05  # e4m3 keeps 3 mantissa bits
    assert np.isfinite(restored).all()
