"""Feed exactly N raw rgb24 frames into an encoder's stdin.

A renderer's stream rarely has exactly the frame count the speech needs
(its clips come in fixed lengths), so this takes the first N frames, closes
the stream early if it has more (a generator's `close()` lets a renderer free
its memory now), and repeats the last frame if it has fewer. Every frame is
checked against the geometry before a byte is written. Knows nothing about
ffmpeg's arguments or MP4s.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO

import numpy as np

from avatar_batch.core.errors import JobError
from avatar_batch.core.records import VideoGeometry

STDERR_KEEP_BYTES = 16_384


@dataclass(frozen=True)
class FeedStats:
    num_frames: int  # written to the encoder
    num_rendered: int  # of those, taken from the stream
    num_repeated: int  # of those, copies of the last rendered frame


class StderrTail:
    """Drains a pipe on a thread, keeping the last bytes. Without this an
    encoder that writes much to stderr would block once the pipe buffer
    (64 KiB) is full, while we block writing frames to it: a deadlock."""

    def __init__(self, pipe: IO[bytes] | None):
        self._chunks: deque[bytes] = deque()
        self._kept = 0
        self._thread = threading.Thread(target=self._drain, args=(pipe,), daemon=True)
        self._thread.start()

    def _drain(self, pipe: IO[bytes] | None) -> None:
        if pipe is None:
            return
        # read1: whatever is there now, so the tail stays current while ffmpeg runs.
        for chunk in iter(lambda: pipe.read1(4096), b""):  # type: ignore[attr-defined]
            self._chunks.append(chunk)
            self._kept += len(chunk)
            while self._kept - len(self._chunks[0]) >= STDERR_KEEP_BYTES:
                self._kept -= len(self._chunks.popleft())

    def text(self, timeout_s: float = 10.0) -> str:
        """Everything kept, once the pipe has closed (or `timeout_s` passed)."""
        self._thread.join(timeout_s)
        return b"".join(self._chunks).decode("utf-8", "replace")


def check_frame(frame: object, geometry: VideoGeometry, index: int) -> np.ndarray:
    """The frame as a C-contiguous (H, W, 3) uint8 array, or JobError saying what is wrong."""
    expected = (geometry.height_px, geometry.width_px, 3)
    if not isinstance(frame, np.ndarray):
        raise JobError(f"frame {index} is a {type(frame).__name__}, expected a numpy array of shape {expected} uint8")
    if frame.dtype != np.uint8 or frame.shape != expected:
        raise JobError(
            f"frame {index} has shape {frame.shape} dtype {frame.dtype}, expected {expected} uint8 "
            f"(H, W, RGB) to match the renderer's geometry {geometry.width_px}x{geometry.height_px}"
        )
    return np.ascontiguousarray(frame)


def close_stream(frames: Iterable[np.ndarray], iterator: Iterator[np.ndarray]) -> None:
    """Close the stream and its iterator, where they can be (generators, FrameStreams)."""
    closed: list[object] = []
    for owner in (frames, iterator):
        close = getattr(owner, "close", None)
        if callable(close) and not any(owner is done for done in closed):
            close()
            closed.append(owner)


def feed_frames(sink: IO[bytes], frames: Iterable[np.ndarray], geometry: VideoGeometry, num_frames: int) -> FeedStats:
    """Write exactly `num_frames` frames to `sink`; the stream is closed on return or error.
    BrokenPipeError from `sink` propagates: the caller knows what the sink was."""
    iterator = iter(frames)
    last: bytes | None = None
    num_rendered = 0
    try:
        for index in range(num_frames):
            frame = next(iterator, None)
            if frame is None:
                break
            last = check_frame(frame, geometry, index).tobytes()
            sink.write(last)
            num_rendered += 1
    finally:
        close_stream(frames, iterator)
    if last is None:
        raise JobError(f"the renderer produced no frames ({num_frames} were needed)")
    for _ in range(num_frames - num_rendered):
        sink.write(last)
    return FeedStats(num_frames=num_frames, num_rendered=num_rendered, num_repeated=num_frames - num_rendered)
