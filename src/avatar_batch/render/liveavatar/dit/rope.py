"""3-D rotary position embedding of the causal S2V DiT (docs/model.md §2.5).

Each attention head's channels form head_dim/2 adjacent (even, odd) pairs,
rotated as complex numbers. The first pairs carry the token's latent-frame
(time) position, the rest are split evenly between row and column: for
head_dim 128 that is 22 time pairs and 21 + 21 spatial pairs. A position is an
integer (time, row, col) triple; a negative time rotates by the negative angle
(the official code takes the complex conjugate of the positive entry).

Multipliers are computed for exactly the positions asked for, so there is no
fixed-length table; the official 45,000-entry table holds the same values.
This module knows nothing about caches or token groups beyond simple grids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from avatar_batch.render.liveavatar.dit.upload import to_device

THETA = 10_000.0


@dataclass(frozen=True)
class RopeAxes:
    """How many channel pairs of a head carry time, and rows (= columns)."""

    time_pairs: int
    space_pairs: int

    @classmethod
    def for_head_dim(cls, head_dim: int) -> RopeAxes:
        if head_dim % 2:
            raise ValueError(f"RoPE needs an even head dim, got {head_dim}")
        space_pairs = head_dim // 6
        return cls(time_pairs=head_dim // 2 - 2 * space_pairs, space_pairs=space_pairs)


@dataclass(frozen=True)
class RopeMultipliers:
    """Per-token rotation: cos and sin of every channel pair, float64 (L, head_dim/2)."""

    cos: torch.Tensor
    sin: torch.Tensor

    @property
    def num_tokens(self) -> int:
        return self.cos.shape[-2]


def inverse_frequencies(num_pairs: int) -> torch.Tensor:
    """theta^(-2j/(2*num_pairs)) for j < num_pairs, float64, as the official table builds it."""
    dim = 2 * num_pairs
    return 1.0 / torch.pow(THETA, torch.arange(0, dim, 2, dtype=torch.float64).div(dim))


def rope_multipliers(
    positions: torch.Tensor, head_dim: int, *, round_to_fp16: bool = True, device: torch.device | None = None
) -> RopeMultipliers:
    """cos/sin for tokens at integer `positions` (L, 3) = (time, row, col).

    `round_to_fp16` reproduces the official complex-half multipliers (parity);
    False keeps them in float64."""
    axes = RopeAxes.for_head_dim(head_dim)
    cos_parts, sin_parts = [], []
    for column, num_pairs in enumerate((axes.time_pairs, axes.space_pairs, axes.space_pairs)):
        position = positions[:, column].to(torch.int64)
        angle = position.abs().to(torch.float64)[:, None] * inverse_frequencies(num_pairs)[None, :]
        sign = torch.where(position < 0, -1.0, 1.0).to(torch.float64)[:, None]
        cos_parts.append(torch.cos(angle))
        sin_parts.append(torch.sin(angle) * sign)
    cos, sin = torch.cat(cos_parts, dim=1), torch.cat(sin_parts, dim=1)
    if round_to_fp16:
        cos, sin = cos.to(torch.float16).to(torch.float64), sin.to(torch.float16).to(torch.float64)
    return RopeMultipliers(to_device(cos, device), to_device(sin, device))


def apply_rope(x: torch.Tensor, rope: RopeMultipliers) -> torch.Tensor:
    """Rotate x (B, L, heads, head_dim) in float64; returns x's dtype (through fp32, as the official code)."""
    b, length, heads, head_dim = x.shape
    if rope.num_tokens != length:
        raise ValueError(f"RoPE multipliers cover {rope.num_tokens} tokens but x has {length}")
    pairs = x.to(torch.float64).reshape(b, length, heads, head_dim // 2, 2)
    real, imag = pairs[..., 0], pairs[..., 1]
    cos, sin = rope.cos[None, :, None, :], rope.sin[None, :, None, :]
    rotated = torch.stack((real * cos - imag * sin, real * sin + imag * cos), dim=-1)
    return rotated.flatten(3).to(torch.float32).to(x.dtype)


def grid_positions(times: Sequence[int], rows: Sequence[int], cols: Sequence[int]) -> torch.Tensor:
    """(len(times)*len(rows)*len(cols), 3) int64 positions in (time, row, col) token order."""
    t = torch.as_tensor(list(times), dtype=torch.int64)
    r = torch.as_tensor(list(rows), dtype=torch.int64)
    c = torch.as_tensor(list(cols), dtype=torch.int64)
    grid = torch.meshgrid(t, r, c, indexing="ij")
    return torch.stack([g.reshape(-1) for g in grid], dim=1)


def block_positions(first_frame: int, num_frames: int, grid_height: int, grid_width: int) -> torch.Tensor:
    """Positions of a noisy block: frames first_frame.., every row and column of the token grid."""
    return grid_positions(range(first_frame, first_frame + num_frames), range(grid_height), range(grid_width))
