"""A step cache writes a block into its ring and reads the window straight into the
caller's attention buffer, in bf16 or dequantised from fp8."""

from __future__ import annotations

import pytest
import torch

from avatar_batch.render.liveavatar.dit.cache import (
    CachePolicy,
    CacheShape,
    TokenGrid,
    allocate_step_caches,
    quantise_fp8_rows,
)

SHAPE = CacheShape(num_layers=2, num_heads=2, head_dim=8, dtype=torch.bfloat16, device=torch.device("cpu"))
GRID = TokenGrid.from_pixels(32, 32)  # 4 tokens per latent frame
BLOCK_TOKENS = 3 * GRID.tokens_per_frame


def blocks(count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(3)
    dims = (1, BLOCK_TOKENS, SHAPE.num_heads, SHAPE.head_dim)
    return [
        (torch.randn(dims, generator=g).bfloat16(), torch.randn(dims, generator=g).bfloat16()) for _ in range(count)
    ]


def read_back(kv_format: str, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Write `count` blocks at layer 1 of a 2-block ring; the last call's buffer (keys, values)."""
    cache = allocate_step_caches(SHAPE, GRID, 1, window_latent_frames=6, policy=CachePolicy(kv_format))[0]
    for index, (k, v) in enumerate(blocks(count)):
        window = cache.window(3 * index, BLOCK_TOKENS)
        keys, values = torch.full((2, 1, window[1], 2, 8), float("nan"), dtype=torch.bfloat16)
        cache.write_and_read_into(1, window, k, v, keys, values)
        cache.commit(3 * index, BLOCK_TOKENS)
    return keys, values


def test_bf16_reads_back_what_was_written_and_the_ring_wraps():
    written = blocks(3)
    keys, values = read_back("bf16", 3)
    # Block 2 overwrote block 0's slot; block 1 keeps the other.
    assert torch.equal(keys[0, :BLOCK_TOKENS], written[2][0][0]) and torch.equal(
        values[0, BLOCK_TOKENS:], written[1][1][0]
    )


def test_fp8_dequantises_into_the_buffer_as_values_times_rounded_scales():
    written = blocks(2)
    keys, values = read_back("fp8", 2)
    for got, (k, v) in zip((keys[0], values[0]), [(written[0][0], written[1][0]), (written[0][1], written[1][1])]):
        for part, x in ((got[:BLOCK_TOKENS], k), (got[BLOCK_TOKENS:], v)):
            quantised, scales = quantise_fp8_rows(x)
            assert torch.equal(part, (quantised.to(torch.bfloat16) * scales.to(torch.bfloat16))[0])
    relative = (keys[0, :BLOCK_TOKENS].float() - written[0][0][0].float()).norm() / written[0][0].float().norm()
    assert relative < 0.05


def test_a_buffer_of_another_length_is_refused():
    cache = allocate_step_caches(SHAPE, GRID, 1, window_latent_frames=6)[0]
    k, v = blocks(1)[0]
    too_long = torch.empty(1, 2 * BLOCK_TOKENS, 2, 8, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="attention buffer holds 24 tokens, the window 12"):
        cache.write_and_read_into(0, cache.window(0, BLOCK_TOKENS), k, v, too_long, too_long)
