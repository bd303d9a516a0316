"""How far an optimised render lands from the plain one: the two numbers of the
quality budget (issue 13).

* `rel_l2(got, want)`: ||got - want||₂ / ||want||₂ over every element, for the
  sampled latents (scale-free, so one budget serves every size and model).
* `psnr_db(got, want)`: peak signal-to-noise ratio of uint8 frames against the
  reference frames, 10·log10(255² / MSE) over every pixel and channel; infinite
  when the frames are identical.

Pure numpy in float64, so the metric does not round like the tensors it
compares; callers hand in host arrays (a torch tensor: `.float().cpu()`).
Knows nothing of models or files.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

UINT8_PEAK = 255.0


def _same_shape(got: np.ndarray, want: np.ndarray, what: str) -> None:
    if got.shape != want.shape:
        raise ValueError(f"{what}: shapes differ, got {got.shape} against the reference's {want.shape}")


def rel_l2(got: ArrayLike, want: ArrayLike) -> float:
    """||got - want|| / ||want||, in float64. The reference must not be all zeros."""
    got64, want64 = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    _same_shape(got64, want64, "rel_l2")
    scale = float(np.linalg.norm(want64))
    if scale == 0.0:
        raise ValueError("rel_l2: the reference is all zeros, so a relative error has no meaning")
    return float(np.linalg.norm(got64 - want64)) / scale


def psnr_db(got: np.ndarray, want: np.ndarray) -> float:
    """PSNR in dB of uint8 frames (any shape, e.g. (F, H, W, 3)); math.inf when equal."""
    for name, frames in (("got", got), ("want", want)):
        if frames.dtype != np.uint8:
            raise ValueError(f"psnr_db: {name} frames are {frames.dtype}; pass the uint8 frames the renderer yields")
    _same_shape(got, want, "psnr_db")
    mse = float(np.mean((got.astype(np.float64) - want.astype(np.float64)) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(UINT8_PEAK**2 / mse)
