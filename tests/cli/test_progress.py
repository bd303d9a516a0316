"""Progress for people: plain lines for logs, and on a terminal one line per
running job (one process) or one line per worker (several)."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from avatar_batch.cli.progress import PlainProgress, RichProgress
from avatar_batch.core.records import JobSpec, LibraryItem, RenderSettings, VoiceSettings
from avatar_batch.plan import Plan


def job(entry: str) -> JobSpec:
    return JobSpec(
        f"id-{entry}", entry, "en", "dr", "dept", "Q?", "A.", Path("p.png"), "", VoiceSettings(), None, RenderSettings()
    )


def item(spec: JobSpec, status: str = "completed") -> LibraryItem:
    return LibraryItem(
        job_id=spec.job_id,
        entry_id=spec.entry_id,
        language="en",
        persona="dr",
        department="dept",
        question="Q?",
        answer="A.",
        status=status,
        renderer="still",
        settings={},
    )


def test_plain_lines_name_the_worker():
    stream = io.StringIO()
    progress = PlainProgress(stream)
    progress.worker_update("w1", "ready (GPU 1, pid 42)")
    progress.worker_update("w1", "faq/en: rendering")
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("worker w1: ready (GPU 1, pid 42)")
    assert lines[1].endswith("worker w1: faq/en: rendering")


def test_terminal_shows_a_line_per_worker_and_no_per_job_line():
    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    a, b = job("a"), job("b")
    with RichProgress(console) as progress:
        progress.planned(Plan((a, b), (), (), 4.0))
        progress.worker_update("w0", "ready")
        progress.worker_update("w1", "ready")
        progress.job_started(a, 0, 2)
        progress.worker_update("w0", "a/en: rendering")
        assert set(progress.worker_lines) == {"w0", "w1"} and not progress.job_lines
        descriptions = {task.description for task in progress.bar.tasks}
        assert "  w0: a/en: rendering" in descriptions and "  w1: ready" in descriptions
        progress.job_finished(a, item(a), 1.0)
        overall = progress.bar.tasks[0]
        assert overall.completed == 1 and overall.total == 2


def test_terminal_in_one_process_shows_the_running_jobs_phase():
    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    a = job("a")
    with RichProgress(console) as progress:
        progress.planned(Plan((a,), (), (), 2.0))
        progress.job_started(a, 0, 1)
        progress.job_phase(a, "render")
        assert [t.description for t in progress.bar.tasks][-1] == "  a/en: render"
        progress.job_finished(a, item(a), 1.0)
        assert not progress.job_lines
