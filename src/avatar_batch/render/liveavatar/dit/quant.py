"""DiT linear weights stored in 8 or 4 bits and computed in the model dtype.

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

`Int4Linear` stores W in 4 bits per group of `INT4_GROUP` input columns, each
group with its own offset and step (a per-row scale is far too coarse at 16
levels): W ≈ low + c · step, c = 0..15, low = min W_group, step = (max − min) / 15,
two codes per byte. The group's own range instead of a symmetric ±max one
uses all 16 levels (relative L2 of Gaussian weights 0.10 instead of 0.12 at
128 columns). low and step are rounded to bf16 before the codes are computed,
so the codes fit the very numbers the product uses. Every call expands the
codes into a weight in the activation dtype; in the compiled blocks
(compiled.py) that is one elementwise kernel (read half a byte, write two
bytes per weight) before an ordinary matrix product; on an H200 the pair costs
0.97-1.13x the bf16 product at one wave's tokens, and packing columns j and
j + in/2 instead of 2j and 2j + 1 is no faster
(benchmarks/results/int4-expand-NVIDIA-H200-20261203.json). A streamed block then
moves about a quarter of its bf16 bytes, which is what a card on a PCIe link
needs where most of a job's weights stream every wave.

`quantise_linears` applies a placement's (weight format, compute) to a model
or one block: fp8 compute keeps the scaled_mm path of `fp8.py` (per-tensor
scales, sm >= 8.9); bf16/fp32 compute with an 8-bit weight format uses
`QuantisedLinear`, with int4 `Int4Linear`. The same Linears are left alone as in `fp8.py`
(`KEEP_IN_BF16`). The LoRA must be merged before: quantising is the last step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from avatar_batch.render.liveavatar.dit.fp8 import KEEP_IN_BF16, Fp8Linear

WEIGHT_FORMATS = ("bf16", "fp8", "int8", "int4")
COMPUTES = ("bf16", "fp8", "fp32")
STORAGE = {"int8": (torch.int8, 127.0), "fp8": (torch.float8_e4m3fn, 448.0)}
INT4_GROUP = 128  # input columns per int4 group: every 14B linear's input width (5120, 13824) divides by it
INT4_LEVELS = 15  # codes 0..15


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


def int4_group(in_features: int) -> int:
    """Columns per group: `INT4_GROUP`, or the whole row where the width does not divide by it."""
    return INT4_GROUP if in_features % INT4_GROUP == 0 else in_features


class Int4Linear(nn.Module):
    weight_packed: torch.Tensor  # (out, in / 2) uint8: column 2j in the low nibble, 2j + 1 in the high
    weight_low: torch.Tensor  # (out, in / group) bf16: each group's least weight
    weight_step: torch.Tensor  # (out, in / group) bf16: its range / 15

    def __init__(self, linear: nn.Linear):
        super().__init__()
        out_features, in_features = linear.weight.shape
        if in_features % 2:
            raise ValueError(f"int4 storage packs two input columns per byte; {in_features} columns is odd")
        group = int4_group(in_features)
        weight = linear.weight.data.float().view(out_features, in_features // group, group)
        low = weight.amin(dim=-1, keepdim=True).to(torch.bfloat16)
        high = weight.amax(dim=-1, keepdim=True)
        step = ((high - low.float()).clamp_min(1e-12) / INT4_LEVELS).to(torch.bfloat16)
        codes = ((weight - low.float()) / step.float()).round().clamp(0, INT4_LEVELS).to(torch.uint8)
        codes = codes.view(out_features, in_features)
        self.register_buffer("weight_packed", codes[:, 0::2] | (codes[:, 1::2] << 4))
        self.register_buffer("weight_low", low.view(out_features, -1))
        self.register_buffer("weight_step", step.view(out_features, -1))
        self.bias = linear.bias
        self.out_features, self.in_features = out_features, in_features

    def weight(self, dtype: torch.dtype) -> torch.Tensor:
        """W ≈ low + c · step in `dtype` (c is exact in bf16; one multiply-add rounds)."""
        packed = self.weight_packed
        codes = torch.stack((packed & 0xF, packed >> 4), dim=-1).view(self.out_features, self.in_features)
        groups = self.weight_step.shape[1]
        c = codes.to(dtype).view(self.out_features, groups, -1)
        w = torch.addcmul(self.weight_low.to(dtype).unsqueeze(-1), c, self.weight_step.to(dtype).unsqueeze(-1))
        return w.view(self.out_features, self.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.weight(x.dtype), bias)


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
        setattr(parent, child, _quantised(linear, weight_format, compute))
    return len(targets)


def _quantised(linear: nn.Linear, weight_format: str, compute: str) -> nn.Module:
    if compute == "fp8":
        return Fp8Linear(linear)
    if weight_format == "int4":
        return Int4Linear(linear)
    return QuantisedLinear(linear, weight_format)
