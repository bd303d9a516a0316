"""Measurements of one Live Avatar job, reported by `FrameStream.telemetry()`.

`PhaseClock` sums wall seconds per named phase (text, audio, reference
encode, sampling, decode...); sampling and decode interleave block by block,
so a phase may be entered many times. `job_telemetry` assembles the flat dict
that goes into the library manifest, with `real_time_factor` (generated frames
per second over the 25 fps the video plays at: >= 1 keeps up with playback).
Knows nothing of models.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avatar_batch.core.records import VIDEO_FPS

PROC_STATUS = Path("/proc/self/status")
PROC_CLEAR_REFS = Path("/proc/self/clear_refs")

# "sampling" includes the sink prefill, which runs when the first block is pulled.
PHASES = ("load", "text", "audio", "reference", "sampling", "decode")


@dataclass
class PhaseClock:
    """`synchronize` (e.g. torch.cuda.synchronize) runs at each phase boundary so
    asynchronous GPU work is charged to the phase that queued it; None leaves the
    GPU queue alone and only the phases' sum is exact."""

    seconds: dict[str, float] = field(default_factory=dict)
    started_s: float = field(default_factory=time.perf_counter)
    synchronize: Callable[[], None] | None = None

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if self.synchronize is not None:
            self.synchronize()
        began = time.perf_counter()
        try:
            yield
        finally:
            if self.synchronize is not None:
                self.synchronize()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - began

    def get(self, name: str) -> float:
        return self.seconds.get(name, 0.0)

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started_s


def peak_rss_gib(status: Path = PROC_STATUS) -> float:
    """Peak resident set since the last `reset_peak_rss` (VmHWM in /proc/self/status),
    else since the process started (ru_maxrss: KiB on Linux, bytes on macOS)."""
    if status.is_file():
        for line in status.read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20  # kB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**30 if sys.platform == "darwin" else 2**20)


def reset_peak_rss(clear_refs: Path = PROC_CLEAR_REFS) -> str:
    """Start a new peak-RSS window for one job: Linux (>= 4.0) resets VmHWM when "5" is
    written to clear_refs. Returns the scope `peak_rss_gib` then measures: "job", or
    "process" where the kernel offers no reset (the peak then covers the whole run so far)."""
    try:
        clear_refs.write_text("5", encoding="ascii")
    except OSError:
        return "process"
    return "job"


def real_time_factor(frames_per_s: float) -> float:
    """Generated frames per second over the playback rate (`VIDEO_FPS`): 1.0 renders a
    second of video per second, so a live answer never waits for frames."""
    return round(frames_per_s / VIDEO_FPS, 3)


def job_telemetry(clock: PhaseClock, *, frames: int, peak_gpu_gib: float, facts: dict[str, Any]) -> dict[str, Any]:
    """Flat, JSON-ready telemetry. `generation_fps` counts frames per second of
    sampling + decode only, so it compares runs without load or encoder time;
    `real_time_factor` is that rate over the playback rate."""
    generation_s = clock.get("sampling") + clock.get("decode")
    generation_fps = frames / generation_s if generation_s > 0 else 0.0
    data: dict[str, Any] = {
        "render_s": round(clock.elapsed_s(), 3),
        "frames": frames,
        "generation_fps": round(generation_fps, 3),
        "real_time_factor": real_time_factor(generation_fps),
        "peak_gpu_gib": round(peak_gpu_gib, 3),
        "peak_rss_gib": round(peak_rss_gib(), 3),
    }
    data.update(facts)
    data.update({f"{name}_s": round(clock.get(name), 3) for name in PHASES})
    return data
