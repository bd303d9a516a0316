"""The `liveavatar` renderer: the `Renderer` protocol over `LiveAvatarRunner`.

* `LiveAvatarRenderer(settings)` only remembers the settings; the networks
  load on the first `start()` and serve every later job of the run.
* `identity()` is cheap: the runner version, the sampler options when they
  differ from the defaults, and `model_identity` of the weights folder
  (config, shard index and LoRA digest; the shards are not read).
* `start(request)` checks the limits, conditions the job and returns a
  `LiveAvatarStream` whose geometry is known at once and whose frames are
  generated while the caller pulls them. The stream stops at the speech's
  length (the last clip's silent tail is never sampled).
* An accelerator out-of-memory anywhere in a job becomes `OutOfMemoryError`
  after the job's tensors are freed; `ladder(settings)` lists the cheaper
  settings the batch layer retries with.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from avatar_batch.core.errors import UnavailableError
from avatar_batch.core.records import PRESETS, VIDEO_FPS, RenderRequest, RenderSettings, VideoGeometry
from avatar_batch.core.settings import parse_size, preset_fields
from avatar_batch.render.liveavatar.conditioning import Conditioning
from avatar_batch.render.liveavatar.memory import out_of_memory_guard, peak_gpu_gib, reset_peak_gpu
from avatar_batch.render.liveavatar.runner import JobPlan, LiveAvatarRunner, Runtime, check_precision
from avatar_batch.render.liveavatar.sampler import SamplerOptions
from avatar_batch.render.liveavatar.telemetry import PhaseClock, job_telemetry

RUNNER_VERSION = "liveavatar-runner-1"
OOM_HINT = "Retry with --offload model or a smaller --preset (the batch does this by itself)"


def _area_px(size: str) -> int:
    width, height = parse_size(size)
    return width * height


def ladder(settings: RenderSettings) -> list[RenderSettings]:
    """Cheaper settings to retry after an out-of-memory, in order: offload the
    helper networks first (same pixels), then each smaller preset (high ->
    standard -> quick), each with offload. Empty when nothing cheaper exists."""
    rungs: list[RenderSettings] = []
    current = settings
    if current.offload != "model":
        current = replace(current, offload="model")
        rungs.append(current)
    for preset in sorted(PRESETS.values(), key=lambda p: _area_px(p.size), reverse=True):
        if _area_px(preset.size) < _area_px(current.size):
            current = replace(current, **preset_fields(preset.name))
            rungs.append(current)
    return rungs


@dataclass
class LiveAvatarStream:
    """One job's frames. Iterate once; `telemetry()` after the iteration ends."""

    geometry: VideoGeometry
    _runner: LiveAvatarRunner
    _plan: JobPlan
    _cond: Conditioning | None
    _options: SamplerOptions
    _clock: PhaseClock
    _facts: dict[str, Any]
    _frames_out: int = field(default=0)

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._cond is None:
            raise RuntimeError("a LiveAvatarStream can be iterated once")
        cond, self._cond = self._cond, None  # the frame generator owns it from here
        frames = self._runner.frames(cond, self._plan, self._options, self._clock)
        del cond
        try:
            with out_of_memory_guard("sampling and decoding", OOM_HINT):
                for frame in islice(frames, self.geometry.num_frames):
                    self._frames_out += 1
                    yield frame
        finally:
            frames.close()  # frees the caches and ends the VAE's device visit now, not at collection
            self._facts["peak_gpu_gib"] = peak_gpu_gib(self._runner.runtime.device)

    def telemetry(self) -> dict[str, Any]:
        peak_gpu = self._facts.get("peak_gpu_gib", peak_gpu_gib(self._runner.runtime.device))
        facts = {k: v for k, v in self._facts.items() if k != "peak_gpu_gib"}
        return job_telemetry(self._clock, frames=self._frames_out, peak_gpu_gib=peak_gpu, facts=facts)


class LiveAvatarRenderer:
    name = "liveavatar"

    def __init__(self, settings: RenderSettings, options: SamplerOptions | None = None, device: str | None = None):
        self.settings = settings
        self.options = options or SamplerOptions()
        self._device = device
        self._runner: LiveAvatarRunner | None = None
        self._identity: str | None = None

    ladder = staticmethod(ladder)

    def _weights_dir(self) -> Path:
        weights = self.settings.weights_dir
        if not weights:
            raise UnavailableError(
                "the liveavatar renderer needs model weights: pass --weights DIR (the official download "
                "layout), or write a tiny test folder with `avatar-batch weights tiny DIR`"
            )
        if not Path(weights).is_dir():
            raise UnavailableError(
                f"weights folder {weights} does not exist: download the Live Avatar checkpoint there "
                "or point --weights at it"
            )
        return Path(weights)

    def identity(self) -> str:
        if self._identity is None:
            from avatar_batch.render.liveavatar.checkpoint import model_identity

            weights = self._weights_dir()
            check_precision(self.settings.precision, Runtime.detect(self._device))
            tag = self.options.tag()
            self._identity = f"{RUNNER_VERSION}{'+' + tag if tag else ''}:{model_identity(weights)}"
        return self._identity

    def _runner_for_run(self) -> LiveAvatarRunner:
        if self._runner is None:
            self._runner = LiveAvatarRunner(self._weights_dir(), Runtime.detect(self._device))
        return self._runner

    def start(self, request: RenderRequest) -> LiveAvatarStream:
        settings = request.settings
        runner = self._runner_for_run()
        check_precision(settings.precision, runner.runtime)
        plan = runner.plan_job(request)  # limits first: a UsageError costs no model work
        clock = PhaseClock()
        with out_of_memory_guard("loading and conditioning", OOM_HINT):
            if not runner.loaded:
                with clock.phase("load"):
                    runner.load(runner.resident_placement(settings.offload, settings.precision))
            runner.use_offload(settings.offload)
            reset_peak_gpu(runner.runtime.device)
            cond = runner.condition(request, plan, self.options, clock)
        return LiveAvatarStream(
            self._geometry(plan, request), runner, plan, cond, self.options, clock, self._facts(plan, settings)
        )

    def _geometry(self, plan: JobPlan, request: RenderRequest) -> VideoGeometry:
        g = plan.sampling.geometry
        generated = g.num_video_frames - self.options.drop_first_frames
        speech_frames = max(1, round(request.speech.duration_s * VIDEO_FPS))
        return VideoGeometry(g.width_px, g.height_px, VIDEO_FPS, max(1, min(generated, speech_frames)))

    def _facts(self, plan: JobPlan, settings: RenderSettings) -> dict[str, Any]:
        runtime, g = self._runner.runtime, plan.sampling.geometry
        return {
            "renderer": self.name,
            "model_identity": self.identity(),
            "device": str(runtime.device),
            "dtype": runtime.dtype_name,
            "precision": settings.precision,
            "offload": settings.offload,
            "size": settings.size,
            "width": g.width_px,
            "height": g.height_px,
            "num_clips": g.num_clips,
            "sample_steps": settings.sample_steps,
            "frames_per_clip": g.frames_per_clip,
            "seed": settings.seed,
            "sink_distance": "random" if self.options.sink_distance is None else self.options.sink_distance,
            "drop_first_frames": self.options.drop_first_frames,
            "pad_mode": self.options.pad_mode,
        }

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()
        self._runner = None
