"""DiT linear weights stored in 8 bits and computed in the model dtype (issue 11).

`QuantisedLinear` keeps W as int8 or float8_e4m3fn with one fp32 scale per
output channel (row): W ≈ q · s, s = max|W_row| / 127 (int8) or / 448 (e4m3).
Every call casts q to the activation dtype (exact: int8 and e4m3 values are
bf16 numbers) and runs an ordinary matrix product, so GPUs without fp8 kernels
(Ampere, sm 8.0/8.6) run it, and a streamed block moves half the bytes of bf16.
The per-row scale multiplies the product's output columns, x·(q·s)ᵀ = (x·qᵀ)·sᵀ:
the weight pass is one 1-byte-in, 2-byte-out cast instead of an fp32 round
trip (three kernels and ~6x the bytes). With int8 weights streamed within 24 GiB
on an H200, 384*256 went from 41.8 to 43.2 FPS
(benchmarks/results/NVIDIA-H200-20261203-offload.json).

`quantise_linears` applies a placement's (weight format, compute) to a model
or one block: fp8 compute keeps the scaled_mm path of `fp8.py` (per-tensor
scales, sm >= 8.9); bf16/fp32 compute with an 8-bit weight format uses
`QuantisedLinear`. The same Linears are left alone as in `fp8.py`
(`KEEP_IN_BF16`). The LoRA must be merged before: quantising is the last step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from avatar_batch.render.liveavatar.dit.fp8 import KEEP_IN_BF16, Fp8Linear

WEIGHT_FORMATS = ("bf16", "fp8", "int8")
COMPUTES = ("bf16", "fp8", "fp32")
STORAGE = {"int8": (torch.int8, 127.0), "fp8": (torch.float8_e4m3fn, 448.0)}


class QuantisedLinear(nn.Module):
    weight_q: torch.Tensor  # (out, in) int8 or float8_e4m3fn
    weight_scale: torch.Tensor  # (out, 1) fp32

    def __init__(self, linear: nn.Linear, weight_format: str):
        super().__init__()
        dtype, top = STORAGE[weight_format]
        weight = linear.weight.data.float()  # (out, in)
        scale = weight.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / top  # (out, 1)
        values = (weight / scale).clamp(-top, top)
        self.register_buffer("weight_q", (values.round() if dtype == torch.int8 else values).to(dtype))
        self.register_buffer("weight_scale", scale)
        self.bias = linear.bias
        self.out_features, self.in_features = linear.out_features, linear.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight_q.to(x.dtype))  # (..., out)
        out = out.mul_(self.weight_scale.view(-1))  # in place: the scale is applied in fp32, stored in x's dtype
        return out if self.bias is None else out.add_(self.bias.to(x.dtype))


def check_formats(weight_format: str, compute: str) -> None:
    if weight_format not in WEIGHT_FORMATS or compute not in COMPUTES:
        raise ValueError(
            f"weight format {weight_format!r} / compute {compute!r}: use one of {WEIGHT_FORMATS} / {COMPUTES}"
        )
    if compute == "fp8" and weight_format != "fp8":
        raise ValueError(f"fp8 compute needs fp8 weights, not {weight_format!r} (scaled_mm reads e4m3 operands)")


def quantise_linears(
    model: nn.Module, weight_format: str, compute: str, skip: Callable[[str], bool] = lambda name: False
) -> int:
    """Replace eligible nn.Linear modules in place (names relative to the DiT, as in
    `KEEP_IN_BF16`, or inside one block); `skip(name)` leaves more alone. Returns how many."""
    check_formats(weight_format, compute)
    if weight_format == "bf16":
        return 0
    targets = [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and not name.startswith(KEEP_IN_BF16) and not skip(name)
    ]
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        linear = getattr(parent, child)
        replaced = Fp8Linear(linear) if compute == "fp8" else QuantisedLinear(linear, weight_format)
        setattr(parent, child, replaced)
    return len(targets)
