"""Video size from a size *area* and the persona image's aspect ratio (docs/model.md §6.2).

The user's `--size W*H` contributes only its pixel area. Height and width
follow the image's aspect ratio, rounded up to multiples of 64 (the VAE's 8x
and the DiT's 2x2 patches, and FramePack's 4x8x8 bucket, need h and w divisible
by 8 in latent space), taking the largest scale whose rounded size still fits
the area. Pure arithmetic: no image decoding, no torch.
"""

from __future__ import annotations

import math

from avatar_batch.core.settings import parse_size

SIZE_MULTIPLE_PX = 64
SCALE_TRIES = 100


def _scale_range(height_px: int, width_px: int, area_px: int) -> tuple[float, float]:
    if height_px * width_px <= area_px:
        # Never upscale a small image; shrink at most to 10 %.
        return 0.1, 1.0
    max_scale = math.sqrt(area_px / (height_px * width_px))
    # Smallest scale worth trying: the one where rounding both sides up by
    # the most (63 px) lands exactly on the area, i.e. the positive root of
    # (h*s + 63) * (w*s + 63) = area.
    pad = SIZE_MULTIPLE_PX - 1
    a = height_px * width_px
    b = pad * (height_px + width_px)
    c = pad * pad - area_px
    min_scale = (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
    return min_scale, max_scale


def _round_up(value: int) -> int:
    return -(-value // SIZE_MULTIPLE_PX) * SIZE_MULTIPLE_PX


def fit_size(image_height_px: int, image_width_px: int, area_px: int) -> tuple[int, int]:
    """(height_px, width_px), multiples of 64, with height*width <= area_px."""
    min_scale, max_scale = _scale_range(image_height_px, image_width_px, area_px)
    for step in range(SCALE_TRIES):
        scale = max_scale - (max_scale - min_scale) * step / SCALE_TRIES
        height = _round_up(int(image_height_px * scale))
        width = _round_up(int(image_width_px * scale))
        if height * width <= area_px:
            return height, width
    # Unreachable for sane images; keep the aspect ratio and round down.
    scale = math.sqrt(area_px / (image_height_px * image_width_px))
    height = max(SIZE_MULTIPLE_PX, int(image_height_px * scale) // SIZE_MULTIPLE_PX * SIZE_MULTIPLE_PX)
    width = max(SIZE_MULTIPLE_PX, int(image_width_px * scale) // SIZE_MULTIPLE_PX * SIZE_MULTIPLE_PX)
    return height, width


def size_for(size: str, image_height_px: int, image_width_px: int) -> tuple[int, int]:
    """Resolve a preset/flag size string against an image: (height_px, width_px)."""
    width, height = parse_size(size)
    return fit_size(image_height_px, image_width_px, width * height)
