"""Attention pieces of the DiT: RMSNorm, the q/k/v/o projection module, SDPA.

`Attention` holds the parameters of every attention in the model under the
official names (`q`, `k`, `v`, `o`, `norm_q`, `norm_k`): the blocks' self- and
text cross-attention and the audio injectors' cross-attention. It projects
and normalises; who the keys are (a cache, the text, audio tokens) is decided
by the caller. Tensors are laid out (B, L, heads, head_dim) as in the caches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """x / rms(x) * weight over the last dim; normalised in fp32, rounded to x's dtype, then scaled."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return normed.to(x.dtype) * self.weight


def layer_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm without affine, computed in fp32 and rounded to x's dtype (as under bf16 autocast)."""
    return F.layer_norm(x.float(), (x.shape[-1],), eps=eps).to(x.dtype)


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Full (unmasked) attention, scale 1/sqrt(head_dim). (B, Lq, H, D) x (B, Lk, H, D) -> (B, Lq, H, D).

    Keys and values of batch 1 serve every query batch (text shared by a batch of blocks)."""
    if k.shape[0] != q.shape[0]:
        k, v = k.expand(q.shape[0], *k.shape[1:]), v.expand(q.shape[0], *v.shape[1:])
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return out.transpose(1, 2)


class Attention(nn.Module):
    """q, k, v, o Linears (dim -> dim, with bias) and RMSNorm on q and k over the full width."""

    def __init__(self, dim: int, num_heads: int, eps: float):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.norm_q = RMSNorm(dim, eps)
        self.norm_k = RMSNorm(dim, eps)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.num_heads, self.head_dim)

    def query(self, x: torch.Tensor) -> torch.Tensor:
        return self._heads(self.norm_q(self.q(x)))

    def key_value(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._heads(self.norm_k(self.k(x))), self._heads(self.v(x))

    def output(self, attended: torch.Tensor) -> torch.Tensor:
        """(B, L, H, D) attention result -> (B, L, dim) through `o`."""
        return self.o(attended.flatten(2))

    def cross(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """x (B, L, dim) attends to every row of context (B, Lc, dim); no RoPE, no mask."""
        return self.attend_to(x, *self.key_value(context))

    def attend_to(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """x (B, L, dim) attends to ready keys and values (B or 1, Lk, heads, head_dim)."""
        return self.output(sdpa(self.query(x), k, v))
