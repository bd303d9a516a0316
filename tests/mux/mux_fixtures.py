"""Mux test helpers: a generated speech master, synthetic frames, MP4 box order."""

from __future__ import annotations

import math
import struct
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from avatar_batch.core.records import Cue, SpeechTrack, VideoGeometry

WIDTH_PX, HEIGHT_PX, FPS = 128, 64, 25
GEOMETRY = VideoGeometry(width_px=WIDTH_PX, height_px=HEIGHT_PX, fps=FPS, num_frames=50)


def make_speech(folder: Path, duration_s: float = 2.0, rate_hz: int = 48_000) -> SpeechTrack:
    """A speech track without TTS: a 220 Hz tone as the master."""
    folder.mkdir(parents=True, exist_ok=True)
    master = folder / "speech_master.wav"
    t = np.arange(round(duration_s * rate_hz)) / rate_hz
    samples = (0.2 * np.sin(2 * math.pi * 220 * t) * 32767).astype("<i2")
    with wave.open(str(master), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate_hz)
        handle.writeframes(samples.tobytes())
    return SpeechTrack(
        master_wav=master,
        model_wav=master,
        duration_s=len(samples) / rate_hz,
        loudness_lufs=-16.0,
        cues=(Cue(0.0, duration_s, "Tone."),),
        captions_vtt=folder / "captions.vtt",
        captions_srt=folder / "captions.srt",
        source="recording",
    )


def frame(index: int, height_px: int = HEIGHT_PX, width_px: int = WIDTH_PX) -> np.ndarray:
    """A frame whose brightness encodes its index, so a poster can be traced back."""
    image = np.zeros((height_px, width_px, 3), dtype=np.uint8)  # (H, W, 3)
    image[:, :, 1] = (index * 4) % 256
    image[: height_px // 2, : width_px // 2, 0] = 255
    return image


class CountingFrames:
    """A frame stream that records how many frames were taken and whether it was closed."""

    def __init__(self, total: int):
        self.total = total
        self.taken = 0
        self.closed = False

    def __iter__(self) -> Iterator[np.ndarray]:
        return self._frames()

    def _frames(self) -> Iterator[np.ndarray]:
        try:
            for index in range(self.total):
                self.taken += 1
                yield frame(index)
        finally:
            self.closed = True  # runs when the generator is closed early or ends


def top_level_boxes(path: Path) -> list[str]:
    """Types of an MP4's top-level boxes, in file order."""
    boxes = []
    with open(path, "rb") as handle:
        while header := handle.read(8):
            size, kind = struct.unpack(">I4s", header)
            header_size = 8
            if size == 1:  # 64-bit size follows
                size = struct.unpack(">Q", handle.read(8))[0]
                header_size = 16
            boxes.append(kind.decode("latin-1"))
            if size == 0:  # box runs to the end of the file
                break
            handle.seek(size - header_size, 1)
    return boxes
