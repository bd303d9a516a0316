"""The `still` renderer: the persona portrait with a speaking-level bar, no GPU.

Used for previews on a laptop and as the fallback when a model render fails on
every setting, so the library never lacks an answer. The bar follows the
speech's loudness frame by frame, so a viewer can see that the clip is live.
"""

from __future__ import annotations

import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from avatar_batch.core.records import VIDEO_FPS, RenderRequest, RenderSettings, VideoGeometry
from avatar_batch.render.geometry import size_for
from avatar_batch.render.image import fit_frame, load_rgb

STILL_VERSION = "still-1"
BAR_HEIGHT_FRACTION = 0.025
BAR_COLOUR_RGB = (46, 160, 67)


def speech_levels(wav_path, fps: int, num_frames: int) -> np.ndarray:
    """Per-frame RMS level of a mono 16-bit WAV, scaled to 0..1."""
    with wave.open(str(wav_path), "rb") as handle:
        rate_hz = handle.getframerate()
        samples = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2").astype(np.float32)
        if handle.getnchannels() > 1:
            samples = samples.reshape(-1, handle.getnchannels()).mean(axis=1)
    hop = max(1, rate_hz // fps)
    padded = np.zeros(num_frames * hop, dtype=np.float32)
    used = min(len(samples), len(padded))
    padded[:used] = samples[:used] / 32768.0
    rms = np.sqrt((padded.reshape(num_frames, hop) ** 2).mean(axis=1))
    peak = float(rms.max()) or 1.0
    return rms / peak


@dataclass
class StillStream:
    geometry: VideoGeometry
    base_frame: np.ndarray  # (H, W, 3) uint8
    levels: np.ndarray  # (num_frames,) in 0..1
    started_s: float = field(default_factory=time.perf_counter)

    def __iter__(self) -> Iterator[np.ndarray]:
        height, width = self.base_frame.shape[:2]
        bar_h = max(2, int(height * BAR_HEIGHT_FRACTION))
        for level in self.levels:
            frame = self.base_frame.copy()
            bar_w = int(width * float(level))
            left = (width - bar_w) // 2
            frame[height - bar_h :, left : left + bar_w] = BAR_COLOUR_RGB
            yield frame

    def telemetry(self) -> dict[str, Any]:
        return {"frames": self.geometry.num_frames, "render_s": round(time.perf_counter() - self.started_s, 3)}


class StillRenderer:
    name = "still"

    def identity(self) -> str:
        return STILL_VERSION

    def start(self, request: RenderRequest) -> StillStream:
        image = load_rgb(request.image_path)
        height_px, width_px = size_for(request.settings.size, image.height, image.width)
        num_frames = max(1, round(request.speech.duration_s * VIDEO_FPS))
        geometry = VideoGeometry(width_px, height_px, VIDEO_FPS, num_frames)
        base = fit_frame(image, height_px, width_px, pad_mode="cover")
        levels = speech_levels(request.speech.model_wav, VIDEO_FPS, num_frames)
        return StillStream(geometry, base, levels)

    def ladder(self, settings: RenderSettings) -> list[RenderSettings]:
        return []  # a portrait and a bar on the CPU: nothing cheaper to fall back to

    def close(self) -> None:
        return None
