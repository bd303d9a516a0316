"""RoPE of the DiT: axis split, agreement with a complex-table rotation, relative
positions, negative times and the fp16 multiplier rounding (docs/model.md §2.5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avatar_batch.render.liveavatar.dit.framepack import motion_positions
from avatar_batch.render.liveavatar.dit.rope import (
    RopeAxes,
    apply_rope,
    block_positions,
    grid_positions,
    rope_multipliers,
)


def test_axes_of_the_released_head_dim():
    assert RopeAxes.for_head_dim(128) == RopeAxes(time_pairs=22, space_pairs=21)
    assert RopeAxes.for_head_dim(64) == RopeAxes(time_pairs=12, space_pairs=10)


def _complex_table_rotation(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Independent formulation: per-axis complex tables, conj for negative time."""
    head_dim = x.shape[-1]
    axes = RopeAxes.for_head_dim(head_dim)
    parts = []
    for column, pairs in enumerate((axes.time_pairs, axes.space_pairs, axes.space_pairs)):
        freqs = 1.0 / 10000 ** (np.arange(0, 2 * pairs, 2) / (2 * pairs))
        pos = positions[:, column].numpy()
        parts.append(np.exp(1j * np.abs(pos)[:, None] * freqs[None, :]) ** np.sign(pos + 0.5)[:, None])
    table = torch.from_numpy(np.concatenate(parts, axis=1))  # (L, pairs) complex128
    xc = torch.view_as_complex(x.double().reshape(*x.shape[:-1], -1, 2).contiguous())
    return torch.view_as_real(xc * table[None, :, None, :]).flatten(3)


def test_rotation_matches_complex_table_including_negative_times():
    positions = torch.cat([block_positions(5, 2, 3, 4), grid_positions([-19, -4], [0, 2], [1, 3])])
    x = torch.randn(1, positions.shape[0], 2, 64, dtype=torch.float64)
    rope = rope_multipliers(positions, 64, round_to_fp16=False)
    # The result passes through fp32, as the official rotation does.
    torch.testing.assert_close(apply_rope(x, rope), _complex_table_rotation(x, positions), rtol=1e-6, atol=1e-6)


def test_attention_scores_depend_only_on_relative_position():
    q, k = torch.randn(1, 1, 1, 64, dtype=torch.float64), torch.randn(1, 1, 1, 64, dtype=torch.float64)

    def score(pq, pk):
        rq = rope_multipliers(torch.tensor([pq]), 64, round_to_fp16=False)
        rk = rope_multipliers(torch.tensor([pk]), 64, round_to_fp16=False)
        return (apply_rope(q, rq) * apply_rope(k, rk)).sum().item()

    assert score((7, 2, 3), (4, 1, 1)) == pytest.approx(score((33, 5, 6), (30, 4, 4)), abs=1e-5)
    assert score((7, 2, 3), (4, 1, 1)) != pytest.approx(score((8, 2, 3), (4, 1, 1)), abs=1e-3)


def test_fp16_rounding_is_an_option_with_parity_default():
    positions = block_positions(1000, 3, 2, 2)
    default = rope_multipliers(positions, 128)
    exact = rope_multipliers(positions, 128, round_to_fp16=False)
    assert torch.equal(default.cos, exact.cos.half().double())
    assert 0 < (default.cos - exact.cos).abs().max() < 1e-3


def test_rotation_keeps_dtype_and_pair_norms():
    x = torch.randn(1, 12, 2, 64).bfloat16()
    out = apply_rope(x, rope_multipliers(block_positions(0, 3, 2, 2), 64, round_to_fp16=False))
    assert out.dtype == torch.bfloat16
    norms = lambda t: t.float().reshape(1, 12, 2, 32, 2).norm(dim=-1)  # noqa: E731
    torch.testing.assert_close(norms(out), norms(x), rtol=2e-2, atol=1e-2)


def test_motion_positions_follow_the_spec_table():
    pos = motion_positions(16, 16)  # latent 16x16 -> token grid 8x8
    newest, mid, old = pos[:64], pos[64:80], pos[80:]
    assert torch.equal(newest, grid_positions([-1], range(8), range(8)))
    assert torch.equal(mid, grid_positions([-3], [0, 2, 4, 7], [0, 2, 4, 7]))  # floor(linspace(0, 7, 4))
    assert torch.equal(old, grid_positions([-19, -14, -9, -4], [0, 7], [0, 7]))
