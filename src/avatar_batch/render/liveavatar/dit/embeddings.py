"""Timestep sinusoid, fp32 Linears, the output head and unpatchify (docs/model.md §2.2, §2.4).

The official model runs its time MLPs and head inside an fp32 autocast region,
so their Linears compute in fp32 even when the weights are bf16;
`linear_fp32` does that without autocast, identically on CPU and GPU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from avatar_batch.render.liveavatar.dit.attention import layer_norm


def timestep_sinusoid(freq_dim: int, timesteps: torch.Tensor) -> torch.Tensor:
    """(N,) timesteps -> (N, freq_dim) float64: cosines then sines at 10000^(-k/half)."""
    if freq_dim % 2:
        raise ValueError(f"freq_dim must be even, got {freq_dim}")
    half = freq_dim // 2
    position = timesteps.to(torch.float64)
    angle = torch.outer(position, torch.pow(10_000, -torch.arange(half).to(position).div(half)))
    return torch.cat([torch.cos(angle), torch.sin(angle)], dim=1)


def linear_fp32(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    bias = None if layer.bias is None else layer.bias.float()
    return F.linear(x.float(), layer.weight.float(), bias)


class Head(nn.Module):
    """Modulated LayerNorm then Linear dim -> prod(patch) * out_dim, in fp32 (official `head`)."""

    def __init__(self, dim: int, out_dim: int, patch_size: tuple[int, int, int], eps: float):
        super().__init__()
        self.eps = eps
        self.modulation = nn.Parameter(torch.zeros(1, 2, dim))
        self.head = nn.Linear(dim, math.prod(patch_size) * out_dim)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """x (F, tokens per frame, dim); e (F, dim) fp32 time embedding of each frame.
        Returns (F, tokens per frame, prod(patch) * out_dim) in x's dtype."""
        mod = self.modulation.float() + e[:, None, :]  # (F, 2, dim)
        shift, scale = mod[:, 0:1], mod[:, 1:2]
        y = linear_fp32(self.head, layer_norm(x, self.eps) * (1 + scale) + shift)
        return y.to(x.dtype)


def unpatchify(
    tokens: torch.Tensor, grid: tuple[int, int, int], patch_size: tuple[int, int, int], out_dim: int
) -> torch.Tensor:
    """(F*gh*gw, pt*ph*pw*C) head outputs -> (C, F*pt, gh*ph, gw*pw) latents.

    Each token's outputs are ordered (pt, ph, pw, C), channel fastest."""
    frames, gh, gw = grid
    pt, ph, pw = patch_size
    u = tokens.reshape(frames, gh, gw, pt, ph, pw, out_dim)
    u = u.permute(6, 0, 3, 1, 4, 2, 5)  # (C, F, pt, gh, ph, gw, pw)
    return u.reshape(out_dim, frames * pt, gh * ph, gw * pw)
