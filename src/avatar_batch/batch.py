"""Wires the stages for one run: catalogue -> plan -> speech -> render -> mux -> library.

The only module that knows every stage. It owns the run lock, decides that a
failed job is recorded and the batch goes on (optionally falling back to the
`still` renderer), and writes the run report. It never prints: progress goes
to a `Progress` listener that `cli` supplies.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from avatar_batch import catalogue as catalogue_stage
from avatar_batch import mux as mux_stage
from avatar_batch import plan as plan_stage
from avatar_batch import speech as speech_stage
from avatar_batch.core.clock import file_stamp, iso_utc
from avatar_batch.core.errors import AvatarBatchError, Interrupted, OutOfMemoryError
from avatar_batch.core.fsio import remove_tree
from avatar_batch.core.records import Catalogue, JobSpec, LibraryItem, RenderRequest, RenderSettings
from avatar_batch.core.settings import resolve_run_settings
from avatar_batch.library import Library
from avatar_batch.render import open_renderer

STAGED_FILES = {
    "video": "video.mp4",
    "poster": "poster.jpg",
    "captions_vtt": "captions.vtt",
    "captions_srt": "captions.srt",
}


class Progress(Protocol):
    def planned(self, plan: plan_stage.Plan) -> None: ...
    def job_started(self, job: JobSpec, index: int, total: int) -> None: ...
    def job_phase(self, job: JobSpec, phase: str) -> None: ...
    def job_finished(self, job: JobSpec, item: LibraryItem, seconds: float) -> None: ...


class SilentProgress:
    def planned(self, plan: plan_stage.Plan) -> None: ...
    def job_started(self, job: JobSpec, index: int, total: int) -> None: ...
    def job_phase(self, job: JobSpec, phase: str) -> None: ...
    def job_finished(self, job: JobSpec, item: LibraryItem, seconds: float) -> None: ...


@dataclass(frozen=True)
class RunOptions:
    """What the command line asked for. `overrides` holds only flags the user set."""

    catalogue_path: Path
    library_dir: Path | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    only: tuple[str, ...] = ()
    force: bool = False
    check_voices: bool = True
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


@dataclass(frozen=True)
class Prepared:
    """A validated catalogue with its settings, library and planned jobs."""

    catalogue: Catalogue
    settings: RenderSettings
    library: Library
    jobs: tuple[JobSpec, ...]


@dataclass
class RunReport:
    run_id: str
    started_at: str
    catalogue: str
    library: str
    settings: dict[str, Any]
    jobs: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0
    retired: int = 0
    finished_at: str | None = None
    outcome: str = "running"

    @property
    def failed(self) -> int:
        return sum(1 for job in self.jobs if job["status"] == "failed")

    def resources(self) -> dict[str, Any]:
        """The run's peaks over its jobs and the placements they ran with (model renderers)."""
        telemetry = [job["telemetry"] for job in self.jobs if job.get("telemetry")]
        placements: list[Any] = []
        for data in telemetry:
            if data.get("placement") and data["placement"] not in placements:
                placements.append(data["placement"])
        peaks = {
            key: max((data[key] for data in telemetry if data.get(key) is not None), default=None)
            for key in ("peak_gpu_gib", "expected_peak_gpu_gib", "peak_rss_gib")
        }
        return {**peaks, "placements": placements}

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["failed"] = self.failed
        data["resources"] = self.resources()
        return data


def load(options: RunOptions) -> Catalogue:
    voices = speech_stage.installed_voices() if options.check_voices else None
    return catalogue_stage.load_catalogue(options.catalogue_path, installed_voices=voices)


def prepare(options: RunOptions, identity_of: Callable[[RenderSettings], str] | None = None) -> Prepared:
    """Validate, resolve settings and build every job id. Loads no model."""
    catalogue = load(options)
    settings = resolve_run_settings(catalogue.defaults, options.env, options.overrides)
    library = Library(options.library_dir or catalogue.library_dir)
    identity = (identity_of or (lambda s: open_renderer(s).identity()))(settings)
    jobs = plan_stage.build_jobs(
        catalogue,
        settings,
        identity,
        catalogue_stage.render_prompt,
        cli_fixed=frozenset(options.overrides),
        only=options.only,
        engine_version=speech_stage.command_version,
    )
    return Prepared(catalogue, settings, library, tuple(jobs))


def placement_summary(settings: RenderSettings) -> dict[str, Any] | None:
    """Where a model renderer would put weights and caches for these settings (no model
    loads); None for renderers without a placement (`still`)."""
    renderer = open_renderer(settings)
    try:
        summarise = getattr(renderer, "placement_summary", None)
        return summarise() if summarise is not None else None
    finally:
        renderer.close()


def make_plan(prepared: Prepared, options: RunOptions) -> plan_stage.Plan:
    return plan_stage.make_plan(
        prepared.jobs,
        prepared.library.items(),
        prepared.library.verify_item,
        force=options.force,
        retire_missing=not options.only,
    )


def _item_for(job: JobSpec, status: str, **fields: Any) -> LibraryItem:
    return LibraryItem(
        job_id=job.job_id,
        entry_id=job.entry_id,
        language=job.language,
        persona=job.persona,
        department=job.department,
        question=job.question,
        answer=job.answer,
        status=status,
        renderer=job.settings.renderer,
        settings=job.settings.hashed_fields(),
        created_at=iso_utc(),
        **fields,
    )


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return text if isinstance(exc, AvatarBatchError) else f"{exc.__class__.__name__}: {text}"


class JobRunner:
    """Runs one job through speech, render and mux into a staging folder, then
    commits it to the library. The model renderer is opened once and reused."""

    def __init__(self, library: Library, settings: RenderSettings, progress: Progress):
        self.library = library
        self.progress = progress
        self.renderer = open_renderer(settings)
        self._still = None

    def close(self) -> None:
        self.renderer.close()

    def _render_into(self, renderer, job: JobSpec, staged: Path, speech) -> tuple[Any, dict[str, Any]]:
        self.progress.job_phase(job, "render")
        request = RenderRequest(job.job_id, job.image_path, job.prompt, speech, job.settings)
        stream = renderer.start(request)
        self.progress.job_phase(job, "mux")
        muxed = mux_stage.encode(iter(stream), stream.geometry, speech, staged)
        return muxed, stream.telemetry()

    def _completed_item(self, job: JobSpec, status: str, speech, muxed, telemetry, started_s, failure=None):
        return _item_for(
            job,
            status,
            failure=failure,
            duration_s=round(muxed.duration_s, 3),
            width=muxed.width_px,
            height=muxed.height_px,
            fps=muxed.fps,
            render_s=round(time.perf_counter() - started_s, 3),
            loudness_lufs=round(speech.loudness_lufs, 2),
            telemetry={**telemetry, "speech_source": speech.source, "video_bytes": muxed.size_bytes},
        )

    def run(self, job: JobSpec) -> LibraryItem:
        started_s = time.perf_counter()
        staged = self.library.staging_dir(job.job_id)
        try:
            self.progress.job_phase(job, "speech")
            speech = speech_stage.synthesize(job, staged)
            try:
                muxed, telemetry = self._render_down_ladder(job, staged, speech)
                item = self._completed_item(job, "completed", speech, muxed, telemetry, started_s)
            except Exception as exc:
                if not (job.fallback_to_still and self.renderer.name != "still"):
                    raise
                fallback_job = replace(job, settings=replace(job.settings, renderer="still"))
                muxed, telemetry = self._render_into(self._still_renderer(), fallback_job, staged, speech)
                item = self._completed_item(job, "fallback", speech, muxed, telemetry, started_s, _describe(exc))
            self.progress.job_phase(job, "library")
            return self.library.commit(item, staged, STAGED_FILES)
        finally:
            remove_tree(staged)

    def _render_down_ladder(self, job: JobSpec, staged: Path, speech) -> tuple[Any, dict[str, Any]]:
        """Render at the job's settings; on out-of-memory retry each cheaper rung
        the renderer offers (offload, smaller size). The settings actually used
        go into the telemetry; the job id stays that of the request."""
        rungs = [job.settings, *self.renderer.ladder(job.settings)]
        for attempt, settings in enumerate(rungs):
            try:
                muxed, telemetry = self._render_into(self.renderer, replace(job, settings=settings), staged, speech)
            except OutOfMemoryError:
                if attempt == len(rungs) - 1:
                    raise
                self.progress.job_phase(job, f"out of memory; retrying with {_rung_label(rungs[attempt + 1])}")
                continue
            used = {k: v for k, v in settings.__dict__.items() if k != "weights_dir"}
            return muxed, {**telemetry, "settings_used": used, "oom_retries": attempt}
        raise AssertionError("unreachable: the ladder always has the requested rung")

    def _still_renderer(self):
        if self._still is None:
            self._still = open_renderer(RenderSettings(renderer="still"))
        return self._still


def _rung_label(settings: RenderSettings) -> str:
    return f"size {settings.size}, offload {settings.offload}, {settings.kv_format} KV cache"


def _job_record(job: JobSpec, item: LibraryItem, seconds: float) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "entry_id": job.entry_id,
        "language": job.language,
        "status": item.status,
        "failure": item.failure,
        "seconds": round(seconds, 3),
        "duration_s": item.duration_s,
        "telemetry": dict(item.telemetry),
    }


def run_jobs(runner: JobRunner, jobs: Sequence[JobSpec], report: RunReport, progress: Progress) -> None:
    for index, job in enumerate(jobs):
        progress.job_started(job, index, len(jobs))
        started_s = time.perf_counter()
        try:
            item = runner.run(job)
        except Exception as exc:  # noqa: BLE001 - one failed job never sinks the batch
            item = _item_for(job, "failed", failure=_describe(exc))
            runner.library.record(item)
        seconds = time.perf_counter() - started_s
        report.jobs.append(_job_record(job, item, seconds))
        progress.job_finished(job, item, seconds)


def render(options: RunOptions, progress: Progress | None = None) -> RunReport:
    """The whole `render` command. Raises typed errors; returns the run report."""
    listener = progress or SilentProgress()
    prepared = prepare(options)
    library = prepared.library
    report = RunReport(
        run_id=f"{file_stamp()}-{os.getpid()}",
        started_at=iso_utc(),
        catalogue=str(options.catalogue_path),
        library=str(library.root),
        settings=dict(prepared.settings.__dict__),
    )
    with library.lock():
        plan = make_plan(prepared, options)
        listener.planned(plan)
        library.retire(plan.to_retire)
        report.skipped, report.retired = len(plan.to_skip), len(plan.to_retire)
        runner = JobRunner(library, prepared.settings, listener)
        try:
            run_jobs(runner, plan.to_render, report, listener)
            report.outcome = "failed" if report.failed else "ok"
        except KeyboardInterrupt as exc:
            report.outcome = "interrupted"
            raise Interrupted("interrupted: temporary files removed; rerun to finish the rest") from exc
        finally:
            runner.close()
            report.finished_at = iso_utc()
            library.rebuild()
            library.write_run_report(report.to_dict())
    return report
