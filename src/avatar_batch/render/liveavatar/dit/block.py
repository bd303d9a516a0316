"""One transformer block of the causal S2V DiT (docs/model.md §2.3), official key names.

Tokens come in G equal groups (one per latent frame for a noisy block, one
group for the sink) and each group has its own six modulation vectors
(shift/scale/gate for self-attention and FFN). Broadcasting per group, instead
of expanding to one vector per token, gives the same numbers without a
(tokens x 6 x dim) fp32 tensor.

The block does not know about caches: its caller passes `self_attend(q, k, v)`,
which receives the projections of the block's tokens and returns their
attention output. Given RoPE multipliers, the block rotates q and k itself, so
a compiled block holds the rotation in its own graph (one graph fewer per
token count than a separately compiled rotation); without them `self_attend`
gets them un-rotated (the sink prefill stores un-rotated keys). Precision follows the
official run: modulation and residual arithmetic in fp32, Linears in the
model dtype, the residual stream rounded to the model dtype at the output.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from avatar_batch.render.liveavatar.dit.attention import Attention, layer_norm
from avatar_batch.render.liveavatar.dit.numerics import DiTNumerics
from avatar_batch.render.liveavatar.dit.rope import RopeMultipliers, apply_rope

SelfAttend = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class DiTBlock(nn.Module):
    def __init__(self, dim: int, ffn_dim: int, num_heads: int, eps: float, numerics: DiTNumerics):
        super().__init__()
        self.eps = eps
        self.numerics = numerics
        # Registered first so it leads the block's state_dict, as in the official files.
        self.modulation = nn.Parameter(torch.zeros(1, 6, dim))
        self.self_attn = Attention(dim, num_heads, eps)
        self.norm3 = nn.LayerNorm(dim, eps=eps, elementwise_affine=True)
        self.cross_attn = Attention(dim, num_heads, eps)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(ffn_dim, dim))

    def forward(
        self,
        x: torch.Tensor,
        e0: torch.Tensor,
        text_kv: tuple[torch.Tensor, torch.Tensor],
        self_attend: SelfAttend,
        rope: RopeMultipliers | None = None,
    ) -> torch.Tensor:
        """x (1, L, dim) model dtype; e0 (G, 6, dim) fp32, L = G * tokens per group;
        text_kv: this block's text cross-attention keys and values, (1, text_len, heads, head_dim)
        each (`text_keys_values`); rope: multipliers of the L tokens, or None to hand
        `self_attend` un-rotated q and k. Returns (1, L, dim) in the model dtype."""
        dtype = x.dtype
        length, dim = x.shape[1], x.shape[2]
        groups = e0.shape[0]
        mod = self.modulation.float() + e0  # (G, 6, dim)
        shift1, scale1, gate1, shift2, scale2, gate2 = (mod[:, i : i + 1] for i in range(6))

        def grouped(t: torch.Tensor) -> torch.Tensor:  # (1, L, dim) -> (G, L/G, dim)
            return t.reshape(groups, length // groups, dim)

        # 1. Self-attention on the modulated LayerNorm; gated residual in fp32.
        a = (layer_norm(grouped(x), self.eps).float() * (1 + scale1) + shift1).to(dtype).reshape(1, length, dim)
        q = self.self_attn.query(a)
        k, v = self.self_attn.key_value(a)
        if rope is not None:
            q, k = apply_rope(q, rope), apply_rope(k, rope)
        y = self.self_attn.output(self_attend(q, k, v))
        h = grouped(x).float() + grouped(y).float() * gate1  # fp32 from here

        # 2. Text cross-attention, no gate.
        h = h + self._text_attention(h.reshape(1, length, dim), text_kv, dtype).reshape(h.shape).float()

        # 3. FFN on the modulated LayerNorm; gated residual in fp32.
        b = (layer_norm(h, self.eps) * (1 + scale2) + shift2).to(dtype)
        h = h + self.ffn(b).float() * gate2
        return h.to(dtype).reshape(1, length, dim)

    def text_keys_values(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The text cross-attention keys and values: fixed for a video, so computed once per job."""
        return self.cross_attn.key_value(context)

    def _text_attention(
        self, h: torch.Tensor, text_kv: tuple[torch.Tensor, torch.Tensor], dtype: torch.dtype
    ) -> torch.Tensor:
        shape = (h.shape[-1],)
        if self.numerics.bf16_before_text_norm:
            # Parity: the official block rounds the stream to bf16 before norm3
            # and norm3's output stays bf16, whatever the model dtype.
            normed = F.layer_norm(h.to(torch.bfloat16), shape, self.norm3.weight, self.norm3.bias, self.eps)
        else:
            normed = F.layer_norm(h, shape, self.norm3.weight.float(), self.norm3.bias.float(), self.eps)
        return self.cross_attn.attend_to(normed.to(dtype), *text_kv)
