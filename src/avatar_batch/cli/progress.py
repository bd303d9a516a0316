"""Progress for people: a rich progress display on a terminal, one plain line
per event otherwise (cron mails and CI logs stay readable). With several
workers, the terminal shows the overall bar plus one line per worker."""

from __future__ import annotations

import sys
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from avatar_batch.core.clock import iso_utc
from avatar_batch.core.records import JobSpec, LibraryItem


def _label(job: JobSpec) -> str:
    return f"{job.entry_id}/{job.language}"


class PlainProgress:
    """Timestamped lines, for logs."""

    def __init__(self, stream: IO[str] | None = None):
        self.stream = stream or sys.stderr

    def _say(self, text: str) -> None:
        print(f"{iso_utc()} {text}", file=self.stream, flush=True)

    def planned(self, plan) -> None:
        self._say(
            f"plan: {len(plan.to_render)} to render, {len(plan.to_skip)} up to date, {len(plan.to_retire)} to retire"
        )

    def job_started(self, job: JobSpec, index: int, total: int) -> None:
        self._say(f"[{index + 1}/{total}] {_label(job)} ({job.job_id}) started")

    def job_phase(self, job: JobSpec, phase: str) -> None:
        self._say(f"  {_label(job)}: {phase}")

    def job_finished(self, job: JobSpec, item: LibraryItem, seconds: float) -> None:
        detail = f": {item.failure}" if item.failure else ""
        self._say(f"  {_label(job)}: {item.status} in {seconds:.1f} s{detail}")

    def worker_update(self, worker: str, text: str) -> None:
        self._say(f"worker {worker}: {text}")


class RichProgress:
    """An overall bar plus one line per running job (one process) or per worker."""

    def __init__(self, console: Console):
        self.console = console
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.overall: TaskID | None = None
        self.job_lines: dict[str, TaskID] = {}  # one process: a line per running job, with its phase
        self.worker_lines: dict[str, TaskID] = {}  # several workers: a line per worker instead

    def __enter__(self) -> RichProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.stop()

    def planned(self, plan) -> None:
        overall = self.overall = self.bar.add_task("render", total=max(1, len(plan.to_render)))
        self.console.print(
            f"{len(plan.to_render)} to render, {len(plan.to_skip)} up to date, {len(plan.to_retire)} to retire"
        )
        if not plan.to_render:
            self.bar.update(overall, completed=1)

    def job_started(self, job: JobSpec, index: int, total: int) -> None:
        if not self.worker_lines:
            self.job_lines[job.job_id] = self.bar.add_task(f"  {_label(job)}", total=4)

    def job_phase(self, job: JobSpec, phase: str) -> None:
        if job.job_id in self.job_lines:
            self.bar.update(self.job_lines[job.job_id], description=f"  {_label(job)}: {phase}", advance=1)

    def worker_update(self, worker: str, text: str) -> None:
        line = self.worker_lines.get(worker)
        if line is None:
            self.worker_lines[worker] = self.bar.add_task(f"  {worker}: {text}", total=None)
        else:
            self.bar.update(line, description=f"  {worker}: {text}")

    def job_finished(self, job: JobSpec, item: LibraryItem, seconds: float) -> None:
        line = self.job_lines.pop(job.job_id, None)
        if line is not None:
            self.bar.remove_task(line)
        colour = {"completed": "green", "fallback": "yellow"}.get(item.status, "red")
        detail = f" — {item.failure}" if item.failure else ""
        self.console.print(f"[{colour}]{item.status}[/] {_label(job)} in {seconds:.1f} s{detail}")
        if self.overall is not None:
            self.bar.advance(self.overall)
