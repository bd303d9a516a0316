"""The renderer interface every video source implements.

A renderer is opened once per run (a model loads once and serves every job),
reports a cheap `identity()` that goes into job ids without loading anything,
and for each job returns a `FrameStream`: the geometry up front, then frames
pulled one at a time, so the mux can encode while the renderer produces and no
renderer ever holds a whole video in memory. A renderer that can run out of
accelerator memory says, through `ladder`, which cheaper settings the batch
may retry a job with.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

from avatar_batch.core.records import RenderRequest, RenderSettings, VideoGeometry


class FrameStream(Protocol):
    geometry: VideoGeometry

    def __iter__(self) -> Iterator[np.ndarray]:
        """Yield `(height_px, width_px, 3)` uint8 RGB frames at `geometry.fps`."""
        ...

    def telemetry(self) -> dict[str, Any]:
        """Measurements of the finished stream (timings, peak memory, settings used)."""
        ...


class Renderer(Protocol):
    name: str

    def identity(self) -> str:
        """What the output depends on besides the request (renderer version,
        model checkpoint hash). Cheap: called before any job is planned."""
        ...

    def start(self, request: RenderRequest) -> FrameStream: ...

    def ladder(self, settings: RenderSettings) -> list[RenderSettings]:
        """Cheaper settings to retry a job with after `OutOfMemoryError`, in the
        order to try them; empty when the renderer cannot run out of memory."""
        ...

    def close(self) -> None: ...
