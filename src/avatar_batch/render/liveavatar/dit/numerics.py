"""Numeric choices of the DiT that trade exactness against the official outputs.

The official implementation has two precision quirks that move its outputs by
far more than fp32 round-off (docs/model.md §2.5, §12). Both are reproduced by default
so a run matches the released model's behaviour; each can be switched off to
get the cleaner arithmetic of upstream Wan.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DiTNumerics:
    # The official cos/sin multipliers pass through a complex-half tensor, so
    # they are rounded to float16 (error about 3e-4) before the float64 rotation.
    rope_fp16_multipliers: bool = True
    # The official block casts the residual stream to bfloat16 before `norm3`
    # (the text cross-attention's LayerNorm) even when the model runs in fp32.
    bf16_before_text_norm: bool = True


PARITY = DiTNumerics()
