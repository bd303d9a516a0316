"""fp8 (e4m3) linears for the DiT, as the released `--fp8` option does (docs/model.md §6.1).

Weights are quantised once, per tensor: s_w = 448 / max|W|, stored as
float8_e4m3fn with their inverse scale; activations are quantised the same way
at every call (dynamic, per tensor); the product runs in `torch._scaled_mm`
with fp32 accumulation into bf16 and the bf16 bias. The LoRA must be merged
before this (it is: `load_dit` merges, the runner quantises after).

Left in bf16, as in the release: the text, time and head projections and the
audio encoder's final linear (small, and sensitive to rounding). Off CUDA the
same quantised numbers are multiplied in fp32, so CPU tests see the exact
quantisation error of a GPU run without the fp8 kernel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

E4M3_MAX = 448.0
KEEP_IN_BF16 = (
    "text_embedding.",
    "time_embedding.",
    "time_projection.",
    "head.head",
    "casual_audio_encoder.encoder.final_linear",
)


def quantise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x in e4m3, inverse scale as a 0-d fp32 tensor) with per-tensor scaling."""
    amax = x.abs().amax().float().clamp_min(1e-12)
    scale = E4M3_MAX / amax
    return (x.float() * scale).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn), scale.reciprocal()


class Fp8Linear(nn.Module):
    weight_fp8: torch.Tensor  # (out, in) float8_e4m3fn
    weight_scale_inv: torch.Tensor  # 0-d fp32

    def __init__(self, linear: nn.Linear):
        super().__init__()
        weight, inverse = quantise(linear.weight.data)
        self.register_buffer("weight_fp8", weight)  # (out, in), row-major: its .t() is what _scaled_mm wants
        self.register_buffer("weight_scale_inv", inverse)
        self.bias = linear.bias
        self.out_features, self.in_features = linear.out_features, linear.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        x8, x_inverse = quantise(rows)
        bias = None if self.bias is None else self.bias.to(torch.bfloat16)
        if rows.is_cuda:
            out = torch._scaled_mm(
                x8,
                self.weight_fp8.t(),
                scale_a=x_inverse,
                scale_b=self.weight_scale_inv,
                bias=bias,
                out_dtype=torch.bfloat16,
                use_fast_accum=True,
            )
        else:
            weight = self.weight_fp8.float() * self.weight_scale_inv
            out = F.linear(x8.float() * x_inverse, weight, None if bias is None else bias.float())
        return out.to(x.dtype).reshape(*x.shape[:-1], self.out_features)


def quantise_linears_fp8(model: nn.Module) -> int:
    """Replace the DiT's eligible nn.Linear layers by Fp8Linear in place; returns how many."""
    targets = [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and not name.startswith(KEEP_IN_BF16)
    ]
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, Fp8Linear(getattr(parent, child)))
    return len(targets)
