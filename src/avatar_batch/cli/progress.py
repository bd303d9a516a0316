"""Progress for people: a rich progress display on a terminal, one plain line
per event otherwise (cron mails and CI logs stay readable)."""

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


class RichProgress:
    """An overall bar plus the current job's phase."""

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
        self.current: TaskID | None = None

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
        self.current = self.bar.add_task(f"  {_label(job)}", total=4)

    def job_phase(self, job: JobSpec, phase: str) -> None:
        if self.current is not None:
            self.bar.update(self.current, description=f"  {_label(job)}: {phase}", advance=1)

    def job_finished(self, job: JobSpec, item: LibraryItem, seconds: float) -> None:
        if self.current is not None:
            self.bar.remove_task(self.current)
        colour = {"completed": "green", "fallback": "yellow"}.get(item.status, "red")
        detail = f" — {item.failure}" if item.failure else ""
        self.console.print(f"[{colour}]{item.status}[/] {_label(job)} in {seconds:.1f} s{detail}")
        if self.overall is not None:
            self.bar.advance(self.overall)
