"""FramePack motion conditioning (docs/model.md §2.8): the last 19 motion latents as sink tokens.

The 19 newest latents are split oldest -> newest into 16 / 2 / 1 and patchified
with growing kernels (4x8x8, 2x4x4, 1x2x2), so the distant past costs few
tokens: for a token grid gh x gw the result is gh*gw + gh*gw/4 + gh*gw/4 tokens,
newest first. Fewer than 19 latents are left-padded with zeros. Their RoPE
positions are fixed negative times (-1; -3; -19, -14, -9, -4) on rows and
columns resampled to the coarser grids the way the official code does it
(`numpy.linspace(...).astype(int)`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from avatar_batch.render.liveavatar.dit.rope import grid_positions

# Latents per projection, newest first, and each projection's kernel = stride.
BUCKET_LATENTS = (1, 2, 16)
BUCKET_KERNELS = ((1, 2, 2), (2, 4, 4), (4, 8, 8))
MOTION_LATENTS = sum(BUCKET_LATENTS)


class FramePacker(nn.Module):
    """The official `frame_packer`: `proj`, `proj_2x`, `proj_4x` Conv3d latent -> dim."""

    def __init__(self, in_dim: int, dim: int, use_newest: bool = True):
        super().__init__()
        self.proj = nn.Conv3d(in_dim, dim, kernel_size=BUCKET_KERNELS[0], stride=BUCKET_KERNELS[0])
        self.proj_2x = nn.Conv3d(in_dim, dim, kernel_size=BUCKET_KERNELS[1], stride=BUCKET_KERNELS[1])
        self.proj_4x = nn.Conv3d(in_dim, dim, kernel_size=BUCKET_KERNELS[2], stride=BUCKET_KERNELS[2])
        # Config `add_last_motion=False` zeroes the 3 newest latents (the official "padd" mode).
        self.use_newest = use_newest

    def forward(self, motion_latents: torch.Tensor) -> torch.Tensor:
        """motion_latents (C, T, h, w), oldest first -> tokens (1, N, dim), newest bucket first."""
        channels, frames, h, w = motion_latents.shape
        if h % 8 or w % 8:
            raise ValueError(f"motion latents {h}x{w} must be multiples of 8 (pixel size a multiple of 64)")
        padded = motion_latents.new_zeros(channels, MOTION_LATENTS, h, w)
        kept = min(frames, MOTION_LATENTS)
        if kept:
            padded[:, -kept:] = motion_latents[:, -kept:]
        if not self.use_newest:
            padded[:, -(BUCKET_LATENTS[0] + BUCKET_LATENTS[1]) :] = 0
        oldest, middle, newest = padded[None].split(BUCKET_LATENTS[::-1], dim=2)
        parts = [self.proj(newest), self.proj_2x(middle), self.proj_4x(oldest)]
        return torch.cat([p.flatten(2).transpose(1, 2) for p in parts], dim=1)


def _resampled(grid: int, count: int) -> list[int]:
    """`count` positions spread over 0..grid-1, truncated to int (official numpy rounding)."""
    return np.linspace(0, grid - 1, count).astype(int).tolist()


def motion_positions(latent_height: int, latent_width: int) -> torch.Tensor:
    """(N, 3) RoPE positions of the FramePack tokens, in `FramePacker` token order."""
    gh, gw = latent_height // 2, latent_width // 2  # the DiT token grid
    parts = []
    oldest_time = 0
    for latents, (kt, kh, kw) in zip(BUCKET_LATENTS, BUCKET_KERNELS):
        oldest_time -= latents  # -1, -3, -19: the bucket's oldest latent, counted back from the block
        num_slices = latents // kt
        # Official: linspace(|start|, |start| - latents + 1, slices), negated.
        times = (-np.linspace(-oldest_time, -oldest_time - latents + 1, num_slices).astype(int)).tolist()
        rows = _resampled(gh, latent_height // kh)
        cols = _resampled(gw, latent_width // kw)
        parts.append(grid_positions(times, rows, cols))
    return torch.cat(parts, dim=0)
