"""Wires the stages for one run: catalogue -> plan -> speech -> render -> mux -> library.

The only module that knows every stage. It owns the run lock, decides that a
failed job is recorded and the batch goes on (optionally falling back to the
`still` renderer), and writes the run report. It never prints: progress goes
to a `Progress` listener that `cli` supplies. With several workers (processes
on this machine's GPUs, or Ray actors) the workers only render into staging
folders; this process still makes every library write (`ParallelRun`).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from avatar_batch import catalogue as catalogue_stage
from avatar_batch import mux as mux_stage
from avatar_batch import plan as plan_stage
from avatar_batch import speech as speech_stage
from avatar_batch.core.clock import file_stamp, iso_utc
from avatar_batch.core.errors import AvatarBatchError, Interrupted, OutOfMemoryError, UnavailableError
from avatar_batch.core.fsio import remove_tree
from avatar_batch.core.records import (
    Catalogue,
    JobSpec,
    LibraryItem,
    RenderRequest,
    RenderSettings,
    SpeechTrack,
    WorkerSettings,
)
from avatar_batch.core.settings import resolve_run_settings, resolve_worker_settings
from avatar_batch.executors import DispatchHooks, Task, WorkerPool, WorkerStats, run_tasks
from avatar_batch.library import Library
from avatar_batch.render import open_renderer
from avatar_batch.render.devices import visible_gpu_ids

PORTRAIT_STEM = "portrait"  # a job's image, copied into its staging folder for a worker
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
    def worker_update(self, worker: str, text: str) -> None: ...


class SilentProgress:
    def planned(self, plan: plan_stage.Plan) -> None: ...
    def job_started(self, job: JobSpec, index: int, total: int) -> None: ...
    def job_phase(self, job: JobSpec, phase: str) -> None: ...
    def job_finished(self, job: JobSpec, item: LibraryItem, seconds: float) -> None: ...
    def worker_update(self, worker: str, text: str) -> None: ...


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
    workers: Mapping[str, Any] = field(default_factory=dict)  # executor, gpus, workers, ray_address flags set


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
    wall_s: float = 0.0
    workers: list[dict[str, Any]] = field(default_factory=list)  # busy seconds and utilisation per worker

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
    if not options.check_voices:
        return catalogue_stage.load_catalogue(options.catalogue_path, installed_voices=None)
    try:
        voices = speech_stage.installed_voices()
    except UnavailableError as missing:
        # No espeak-ng: fine when nothing would be spoken with it (every such
        # answer recorded, or command voices), as on a GPU node rendering recordings.
        catalogue = catalogue_stage.load_catalogue(options.catalogue_path, installed_voices=None)
        speakers = speech_stage.espeak_speakers(catalogue)
        if speakers:
            more = f" and {len(speakers) - 1} more" if len(speakers) > 1 else ""
            raise UnavailableError(
                f"{missing} {options.catalogue_path}: answer {speakers[0]}{more} has no recording "
                "(field 'audio') and would be spoken by espeak-ng"
            ) from missing
        return catalogue
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


class JobRenderer:
    """Renders one job whose speech is ready and muxes it into its staging
    folder (falling back to `still` if asked). The model renderer is opened
    once and reused; a worker holds exactly one."""

    def __init__(self, settings: RenderSettings, progress: Progress):
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

    def render(self, job: JobSpec, staged: Path, speech: SpeechTrack, started_s: float) -> LibraryItem:
        try:
            muxed, telemetry = self._render_down_ladder(job, staged, speech)
            return self._completed_item(job, "completed", speech, muxed, telemetry, started_s)
        except Exception as exc:
            if not (job.fallback_to_still and self.renderer.name != "still"):
                raise
            fallback_job = replace(job, settings=replace(job.settings, renderer="still"))
            muxed, telemetry = self._render_into(self._still_renderer(), fallback_job, staged, speech)
            return self._completed_item(job, "fallback", speech, muxed, telemetry, started_s, _describe(exc))

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


class JobRunner(JobRenderer):
    """The single-process path: speech, render and mux into a staging folder,
    then the commit, one job at a time in this process."""

    def __init__(self, library: Library, settings: RenderSettings, progress: Progress):
        super().__init__(settings, progress)
        self.library = library

    def run(self, job: JobSpec) -> LibraryItem:
        started_s = time.perf_counter()
        staged = self.library.staging_dir(job.job_id)
        try:
            self.progress.job_phase(job, "speech")
            speech = speech_stage.synthesize(job, staged)
            item = self.render(job, staged, speech, started_s)
            self.progress.job_phase(job, "library")
            return self.library.commit(item, staged, STAGED_FILES)
        finally:
            remove_tree(staged)


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


@dataclass(frozen=True)
class WorkerFactory:
    """Builds a worker's work function: its renderer, opened once per worker.
    Picklable, so a spawned process or a Ray actor can rebuild it."""

    settings: RenderSettings

    def __call__(self) -> Callable[[Task, Path], LibraryItem]:
        return partial(render_task, JobRenderer(self.settings, SilentProgress()))


def render_task(renderer: JobRenderer, task: Task, folder: Path) -> LibraryItem:
    """A worker's part of a job: render and mux into `folder` (the staging
    folder, or a copy of it on another machine). A failure is the job's row,
    not the worker's end."""
    job, speech = task.payload
    job, speech = _moved(job, speech, task.folder, folder)
    try:
        return renderer.render(job, folder, speech, time.perf_counter())
    except Exception as exc:  # noqa: BLE001 - one failed job never sinks the batch
        return _item_for(job, "failed", failure=_describe(exc))


def _moved(job: JobSpec, speech: SpeechTrack, old: Path, new: Path) -> tuple[JobSpec, SpeechTrack]:
    """The job and speech as seen from a copy of the staging folder at `new`."""

    def at(path: Path) -> Path:
        return new / path.relative_to(old)

    return replace(job, image_path=at(job.image_path)), replace(
        speech,
        master_wav=at(speech.master_wav),
        model_wav=at(speech.model_wav),
        captions_vtt=at(speech.captions_vtt),
        captions_srt=at(speech.captions_srt),
    )


def open_pool(workers: WorkerSettings, settings: RenderSettings) -> WorkerPool:
    factory = WorkerFactory(settings)
    if workers.executor == "ray":
        from avatar_batch.executors.ray_pool import RayPool

        return RayPool(factory, workers.workers, workers.ray_address)
    from avatar_batch.executors.local import LocalPool

    return LocalPool(factory, [workers.device_of(index) for index in range(workers.workers or 1)])


class ParallelRun:
    """The driver's side of a run on several workers: speech ahead on this
    machine, every library write here, in the dispatcher's thread."""

    def __init__(self, library: Library, report: RunReport, progress: Progress, total: int):
        self.library, self.report, self.progress, self.total = library, report, progress, total
        self.started_s: dict[str, float] = {}
        self.staged: set[Path] = set()  # staging folders not yet committed or removed

    def hooks(self) -> DispatchHooks:
        return DispatchHooks(
            self.prepare, self.started, self.finished, self.failed, self.progress.worker_update, plan_stage.job_speech_s
        )

    def prepare(self, job: JobSpec) -> Task:
        """On a preparation thread: the job's speech, into a new staging folder."""
        staged = self.library.staging_dir(job.job_id)
        self.staged.add(staged)
        try:
            speech = speech_stage.synthesize(job, staged)
            # The portrait travels with the job: a worker on another machine sees only this folder.
            portrait = staged / f"{PORTRAIT_STEM}{job.image_path.suffix}"
            shutil.copyfile(job.image_path, portrait)
        except BaseException:
            remove_tree(staged)
            self.staged.discard(staged)
            raise
        payload = (replace(job, image_path=portrait), speech)
        return Task(job.job_id, f"{job.entry_id}/{job.language}", staged, payload, plan_stage.job_speech_s(job))

    def started(self, job: JobSpec, task: Task, worker: str) -> None:
        self.started_s.setdefault(job.job_id, time.perf_counter())
        self.progress.job_started(job, len(self.started_s) - 1, self.total)
        retry = " (retry)" if task.attempt > 1 else ""
        self.progress.worker_update(worker, f"{task.label}{retry}: rendering")

    def finished(self, job: JobSpec, task: Task, item: LibraryItem, worker: str) -> None:
        try:
            if item.status == "failed":
                self.library.record(item)
            else:
                item = self.library.commit(item, task.folder, STAGED_FILES)
        except Exception as exc:  # noqa: BLE001 - one failed job never sinks the batch
            item = _item_for(job, "failed", failure=_describe(exc))
            self.library.record(item)
        self._done(job, item, task.folder, worker)

    def failed(self, job: JobSpec, task: Task | None, why: str | BaseException) -> None:
        item = _item_for(job, "failed", failure=why if isinstance(why, str) else _describe(why))
        self.library.record(item)
        self._done(job, item, task.folder if task else None, None)

    def remove_staged(self) -> None:
        for folder in self.staged:
            remove_tree(folder)
        self.staged.clear()

    def _done(self, job: JobSpec, item: LibraryItem, folder: Path | None, worker: str | None) -> None:
        if folder is not None:
            remove_tree(folder)
            self.staged.discard(folder)
        seconds = time.perf_counter() - self.started_s.get(job.job_id, time.perf_counter())
        self.report.jobs.append({**_job_record(job, item, seconds), "worker": worker})
        self.progress.job_finished(job, item, seconds)


def run_parallel(
    library: Library,
    settings: RenderSettings,
    workers: WorkerSettings,
    jobs: Sequence[JobSpec],
    report: RunReport,
    progress: Progress,
    stats: list[WorkerStats],
) -> None:
    run = ParallelRun(library, report, progress, len(jobs))
    try:
        run_tasks(open_pool(workers, settings), jobs, run.hooks(), key=lambda job: job.job_id, stats_out=stats)
    finally:
        run.remove_staged()  # workers and preparation threads have stopped: nothing writes here now
        order = {job.job_id: index for index, job in enumerate(jobs)}
        report.jobs.sort(key=lambda record: order.get(record["job_id"], len(order)))


def render(options: RunOptions, progress: Progress | None = None) -> RunReport:
    """The whole `render` command. Raises typed errors; returns the run report."""
    listener = progress or SilentProgress()
    prepared = prepare(options)
    workers = resolve_worker_settings(options.env, options.workers, visible_gpu_ids(options.env))
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
        runner = JobRunner(library, prepared.settings, listener) if workers.in_process else None
        started_s, stats = time.perf_counter(), list[WorkerStats]()
        try:
            if runner is not None:
                run_jobs(runner, plan.to_render, report, listener)
            elif plan.to_render:
                run_parallel(library, prepared.settings, workers, plan.to_render, report, listener, stats)
            report.outcome = "failed" if report.failed else "ok"
        except KeyboardInterrupt as exc:
            report.outcome = "interrupted"
            raise Interrupted("interrupted: temporary files removed; rerun to finish the rest") from exc
        finally:
            if runner is not None:
                runner.close()
                stats = [WorkerStats("main", "this process", len(report.jobs), sum(j["seconds"] for j in report.jobs))]
            report.wall_s = round(time.perf_counter() - started_s, 3)
            report.workers = [worker.to_dict(report.wall_s) for worker in stats]
            report.finished_at = iso_utc()
            library.rebuild()
            library.write_run_report(report.to_dict())
    return report
