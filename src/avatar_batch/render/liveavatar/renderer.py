"""The `liveavatar` renderer: the `Renderer` protocol over `LiveAvatarRunner`.

* `LiveAvatarRenderer(settings)` checks the settings against the model's
  limits (a `UsageError` before any job) and remembers them; the networks
  load on the first `start()` and serve every later job of the run.
* `identity()` is cheap: the runner version, the sampler options when they
  differ from the defaults, and `model_identity` of the weights folder
  (config, shard index and LoRA digest; the shards are not read).
* `start(request)` checks the limits, conditions the job and returns a
  `LiveAvatarStream` whose geometry is known at once and whose frames are
  generated while the caller pulls them. The stream stops at the speech's
  length (the last clip's silent tail is never sampled).
* Placement: the first job plans where weights and caches live
  (`placement_plan.plan_placement`, from this GPU's memory or `--gpu-memory`,
  the host's free memory, the architecture and the job's size) and loads the
  runner that way; later jobs keep it while it serves them (`keeps`), else the
  runner moves its helpers or reloads. A job that cannot be placed raises
  `PlacementError` before anything loads; `identity()` refuses a run none of
  whose ladder rungs can be placed.
* An accelerator out-of-memory anywhere in a job becomes `OutOfMemoryError`
  after the job's tensors are freed; `ladder(settings)` (`oom_ladder`) lists the cheaper
  settings the batch layer retries with.
* Compile cache: with compiled blocks (CUDA) and `settings.compile_cache_dir`,
  each job first loads the compiled kernels a past run kept for its key
  (`compile_cache.CompileCache`), and a key's first finished job keeps them
  when the file was missing, unusable or incomplete; the telemetry's `compile_cache` says "warm", "cold" or "off".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avatar_batch.core.errors import UnavailableError
from avatar_batch.core.records import PRESETS, VIDEO_FPS, RenderRequest, RenderSettings, VideoGeometry
from avatar_batch.core.settings import parse_size, preset_fields
from avatar_batch.render.liveavatar import placement_report as report
from avatar_batch.render.liveavatar.compile_cache import CacheState, CompileCache, CompileKey, compile_key, device_facts
from avatar_batch.render.liveavatar.conditioning import Conditioning
from avatar_batch.render.liveavatar.config import ModelConfig
from avatar_batch.render.liveavatar.limits import ClipGeometry, check_run_settings
from avatar_batch.render.liveavatar.memory import out_of_memory_guard, peak_gpu_gib, reset_peak_gpu
from avatar_batch.render.liveavatar.memory_model import GIB
from avatar_batch.render.liveavatar.placement import Placement
from avatar_batch.render.liveavatar.placement_plan import (
    DECODER_CHUNKS,
    Machine,
    PlacementError,
    PlacementRequest,
    differs_only_in_helpers,
    estimate,
    keeps,
    knobs_of,
    plan_placement,
)
from avatar_batch.render.liveavatar.runner import JobPlan, LiveAvatarRunner, Runtime, check_precision, helper_offload
from avatar_batch.render.liveavatar.sampler import LatentsSink, SamplerOptions
from avatar_batch.render.liveavatar.telemetry import PhaseClock, job_telemetry, reset_peak_rss

RUNNER_VERSION = "liveavatar-runner-1"
OOM_HINT = "Retry with --offload blocks, --kv-format fp8 or a smaller --preset (the batch does this by itself)"


def _area_px(size: str) -> int:
    width, height = parse_size(size)
    return width * height


def oom_ladder(settings: RenderSettings) -> list[RenderSettings]:
    """Cheaper settings to retry after an out-of-memory, in order: lend the helper
    networks from the CPU (after `none`; `auto` has weighed that already), stream
    DiT layers and caches from host memory with headroom (`blocks`; same pixels),
    an fp8 KV cache, then each smaller preset (high -> standard -> quick) with all
    of that. Empty when nothing cheaper exists."""
    rungs: list[RenderSettings] = []
    current = settings
    if current.offload == "none":
        current = replace(current, offload="model")
        rungs.append(current)
    if current.offload != "blocks":
        current = replace(current, offload="blocks")
        rungs.append(current)
    if current.kv_format != "fp8":
        current = replace(current, kv_format="fp8")
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
    _compiled: tuple[CompileCache, CompileKey] | None = None  # what to keep once the job finishes
    _frames_out: int = field(default=0)
    _latents_sink: LatentsSink | None = field(default=None)

    def observe_latents(self, sink: LatentsSink) -> LiveAvatarStream:
        """Show `sink` each block's sampled latents as the frames are pulled (the quality
        benchmark compares them across formats). Call before iterating; returns the stream."""
        if self._cond is None:
            raise RuntimeError("observe_latents must be called before the stream is iterated")
        self._latents_sink = sink
        return self

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._cond is None:
            raise RuntimeError("a LiveAvatarStream can be iterated once")
        cond, self._cond = self._cond, None  # the frame generator owns it from here
        h2d_before = self._runner.host_to_device_bytes()  # streamed weights and caches of this job
        graphs_before = self._runner.graph_counts()
        frames = self._runner.frames(cond, self._plan, self._options, self._clock, self._latents_sink)
        del cond
        try:
            with out_of_memory_guard("sampling and decoding", OOM_HINT):
                for frame in islice(frames, self.geometry.num_frames):
                    self._frames_out += 1
                    yield frame
            if self._compiled is not None:
                self._compiled[0].finished(self._compiled[1])
        finally:
            frames.close()  # frees the caches and ends the VAE's device visit now, not at collection
            self._facts["peak_gpu_gib"] = peak_gpu_gib(self._runner.runtime.device)
            self._facts["h2d_gib"] = round((self._runner.host_to_device_bytes() - h2d_before) / GIB, 3)
            graphs_after = self._runner.graph_counts()
            if graphs_before is not None and graphs_after is not None:
                self._facts["cuda_graphs"] = {
                    "recorded": graphs_after.recorded - graphs_before.recorded,
                    "replayed": graphs_after.replayed - graphs_before.replayed,
                }

    def telemetry(self) -> dict[str, Any]:
        peak_gpu = self._facts.get("peak_gpu_gib", peak_gpu_gib(self._runner.runtime.device))
        facts = {k: v for k, v in self._facts.items() if k != "peak_gpu_gib"}
        return job_telemetry(self._clock, frames=self._frames_out, peak_gpu_gib=peak_gpu, facts=facts)


class LiveAvatarRenderer:
    name = "liveavatar"

    def __init__(self, settings: RenderSettings, options: SamplerOptions | None = None, device: str | None = None):
        check_run_settings(settings)
        self.settings = settings
        self.options = options or SamplerOptions()
        self._device = device
        self._runner: LiveAvatarRunner | None = None
        self._identity: str | None = None
        self._planner: tuple[ModelConfig, Machine] | None = None
        folder = settings.compile_cache_dir
        self.compile_cache = CompileCache(Path(folder) if folder else None)

    def ladder(self, settings: RenderSettings) -> list[RenderSettings]:
        return oom_ladder(settings)

    # --- placement -------------------------------------------------------------------

    def _planner_inputs(self) -> tuple[ModelConfig, Machine]:
        """The architecture of the weights and this machine, looked up once per run."""
        if self._planner is None:
            device = Runtime.detect(self._device).device
            machine = report.detect_machine(str(device), None, device.index or 0)
            self._planner = (report.model_config_for(self.settings.weights_dir), machine)
        return self._planner

    def placement_request(self, settings: RenderSettings, height_px: int, width_px: int) -> PlacementRequest:
        model, machine = self._planner_inputs()
        budget = None if settings.gpu_memory_gib is None else int(settings.gpu_memory_gib * GIB)
        return report.request_for(settings, model, replace(machine, gpu_budget_bytes=budget), height_px, width_px)

    def placement_summary(self) -> dict[str, Any]:
        """The run settings' placement on this machine, for `plan` (no model loads)."""
        request = self.placement_request(self.settings, *report.settings_video(self.settings))
        return report.summary(self.settings, request.model, request.machine)

    def _check_some_rung_fits(self) -> None:
        """Refuse, before anything loads, a run that no rung of the ladder can place."""
        first: PlacementError | None = None
        for rung in [self.settings, *oom_ladder(self.settings)]:
            try:
                plan_placement(self.placement_request(rung, *report.settings_video(rung)))
                return
            except PlacementError as exc:
                first = first or exc
        raise UnavailableError(str(first))

    def _placed_runner(self, settings: RenderSettings, geometry: ClipGeometry, clock: PhaseClock) -> LiveAvatarRunner:
        """The runner with a placement that serves this job: the loaded one when it does,
        else its helpers moved, else a reload. Planning raises before anything loads."""
        runner = self._runner_for_run()
        request = self.placement_request(settings, geometry.height_px, geometry.width_px)
        loaded = runner.placement
        if loaded is not None and keeps(loaded, request):
            return runner
        placement = plan_placement(request)
        if loaded is not None and differs_only_in_helpers(loaded, placement):
            runner.use_offload(helper_offload(placement))
            runner.placement = placement
            return runner
        if loaded is not None:
            runner.close()
            self._runner = runner = LiveAvatarRunner(self._weights_dir(), runner.runtime)
        with clock.phase("load"):
            runner.load(placement)
        return runner

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
            self._check_some_rung_fits()
            tag = self.options.tag()
            self._identity = f"{RUNNER_VERSION}{'+' + tag if tag else ''}:{model_identity(weights)}"
        return self._identity

    def _runner_for_run(self) -> LiveAvatarRunner:
        if self._runner is None:
            runtime = Runtime.detect(self._device, cuda_graphs=self.settings.cuda_graphs)
            self._runner = LiveAvatarRunner(self._weights_dir(), runtime)
        return self._runner

    def start(self, request: RenderRequest) -> LiveAvatarStream:
        settings = request.settings
        check_precision(settings.precision, self._runner_for_run().runtime)
        plan = self._runner_for_run().plan_job(request)  # limits first: a UsageError costs no model work
        clock = PhaseClock()
        rss_scope = reset_peak_rss()
        with out_of_memory_guard("loading and conditioning", OOM_HINT):
            runner = self._placed_runner(settings, plan.sampling.geometry, clock)
            reset_peak_gpu(runner.runtime.device)
            compiled = self._compile_key(runner, plan)
            cache_state = self._prepare_compile_cache(compiled)
            cond = runner.condition(request, plan, self.options, clock)
        facts = {**self._facts(plan, settings), "peak_rss_scope": rss_scope, "compile_cache": cache_state}
        if clock.get("load"):  # this job loaded the networks: where that time went
            facts["load_parts_s"] = dict(runner.load_seconds)
        geometry = self._geometry(plan, request)
        kept = None if compiled is None else (self.compile_cache, compiled)
        return LiveAvatarStream(geometry, runner, plan, cond, self.options, clock, facts, kept)

    def _compile_key(self, runner: LiveAvatarRunner, plan: JobPlan) -> CompileKey | None:
        """The job's compile-cache key; None when the blocks run eager (nothing to keep)."""
        if not runner.runtime.compile or runner.placement is None:
            return None
        device = device_facts(runner.runtime.device)
        return compile_key(str(torch.__version__), device, runner.placement, plan.sampling.geometry)

    def _prepare_compile_cache(self, key: CompileKey | None) -> CacheState:
        return "off" if key is None else self.compile_cache.prepare(key)

    def _geometry(self, plan: JobPlan, request: RenderRequest) -> VideoGeometry:
        g = plan.sampling.geometry
        generated = g.num_video_frames - self.options.drop_first_frames
        speech_frames = max(1, round(request.speech.duration_s * VIDEO_FPS))
        return VideoGeometry(g.width_px, g.height_px, VIDEO_FPS, max(1, min(generated, speech_frames)))

    def _facts(self, plan: JobPlan, settings: RenderSettings) -> dict[str, Any]:
        runner = self._runner_for_run()
        runtime, g, placement = runner.runtime, plan.sampling.geometry, runner.placement
        return {
            **_placement_facts(placement, self.placement_request(settings, g.height_px, g.width_px)),
            "renderer": self.name,
            "model_identity": self.identity(),
            "device": str(runtime.device),
            "dtype": runtime.dtype_name,
            "precision": settings.precision,
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


def _placement_facts(placement: Placement | None, request: PlacementRequest) -> dict[str, Any]:
    """The placement the job ran with, as the manifest's telemetry records it; the expected
    host bytes are what the plan keeps there (pinned streams, lent helpers, the process)."""
    if placement is None:
        return {}
    host = estimate(request, knobs_of(placement), DECODER_CHUNKS[-1]).host_bytes
    return {
        "offload": placement.offload,
        "placement": placement.to_dict(),
        "expected_peak_gpu_gib": round(placement.gpu_peak_bytes / GIB, 3),
        "expected_host_gib": round(host / GIB, 3),
    }
