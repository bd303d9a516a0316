"""Persona image to a frame of the video size.

Resize so the short side matches the target's short side (bilinear,
antialiased), then centre-crop to the target. When the resized image is
narrower than the target in one dimension the official Live Avatar pipeline
pads with black bars (docs/model.md §0.6); `pad_mode="black"` reproduces that for
parity, `pad_mode="cover"` scales up just enough to fill the frame instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

PAD_MODES = ("black", "cover")


def load_rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def fit_frame(image: Image.Image, height_px: int, width_px: int, pad_mode: str = "cover") -> np.ndarray:
    """(height_px, width_px, 3) uint8 frame of `image`."""
    if pad_mode not in PAD_MODES:
        raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
    src_w, src_h = image.size
    if pad_mode == "cover":
        scale = max(height_px / src_h, width_px / src_w)
    else:
        scale = min(height_px, width_px) / min(src_h, src_w)
    new_w = max(1, int(src_w * scale)) if pad_mode == "black" else max(width_px, round(src_w * scale))
    new_h = max(1, int(src_h * scale)) if pad_mode == "black" else max(height_px, round(src_h * scale))
    resized = np.asarray(image.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=None))
    canvas = np.zeros((max(new_h, height_px), max(new_w, width_px), 3), dtype=np.uint8)
    top = (canvas.shape[0] - new_h) // 2
    left = (canvas.shape[1] - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = resized
    crop_top = (canvas.shape[0] - height_px) // 2
    crop_left = (canvas.shape[1] - width_px) // 2
    return np.ascontiguousarray(canvas[crop_top : crop_top + height_px, crop_left : crop_left + width_px])
