"""kill -9 at a dozen seeded moments across speech, render, mux and library writes.

Runs of a three-entry catalogue are killed one after another, each next run
being the rerun of the killed one, until the library is complete; then it is
checked against a clean run's and a new chain starts on an empty library.
Moments come from a seeded plan: a delay after start spread from 0 to the
expected run time, or a `--plain` log line (the n-th job's speech, render,
mux or library phase, or the last job's end, when the indexes are rebuilt)
plus a short random delay. Phase moments go through the four phases in
rounds (each round in a seeded order), so the first four already cover every
phase. After every kill, every manifest row must point at whole files; a
reader thread polls the library all along.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import re
import signal
import sqlite3
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.hardening.projects import CLI, library_problems, manifest_items, render
from tests.hardening.reader import DATA_BLOCK, LibraryReader

SEED = 20261123
# Kills that must land on a running process. Twelve cover every kind of moment:
# the first twelve planned are the start, three moments in time, seven phase
# moments (every phase at least once) and an end. Each chain of reruns repeats
# a clean run's work, so every kill costs seconds.
KILLS = 12
MOMENTS = 24  # planned; a moment the run outlives is skipped, not retried
PHASES = ("speech", "render", "mux", "library")
PLAN_LINE = re.compile(r"plan: (\d+) to render")
END_LINE = re.compile(r": (completed|failed|fallback) in ")


@dataclass(frozen=True)
class Moment:
    """When to kill: `delay_s` after start ("time"), or `delay_s` after the
    log line ("phase": the chosen job's phase line; "end": the last job's end)."""

    kind: str
    fraction: float  # "time": of the expected run time; "phase": which remaining job
    phase: str | None
    delay_s: float

    def label(self) -> str:
        if self.kind == "time":
            return f"time {self.fraction:.2f} of the run"
        where = self.phase if self.kind == "phase" else "end"
        return f"{where} +{self.delay_s * 1000:.0f} ms"


def plan_moments(rng: random.Random, count: int) -> list[Moment]:
    moments = [Moment("time", 0.0, None, 0.0)]  # at once: before anything is written
    # An "end" kill lands after the last job, so it closes a chain (a whole
    # clean run's worth of work): few of those keep the test near a minute.
    kinds = ["time", "phase", "phase", "time", "phase", "phase", "end"]
    phases: list[str] = []
    while len(moments) < count:
        kind = kinds[len(moments) % len(kinds)]
        if kind == "time":
            moments.append(Moment("time", rng.random(), None, 0.0))
        elif kind == "phase":
            phases = phases or rng.sample(PHASES, len(PHASES))
            phase = phases.pop()
            # the library phase (commit, manifest, sqlite, html) lasts ~0.1 s
            moments.append(Moment("phase", rng.random(), phase, rng.uniform(0, 0.12 if phase == "library" else 0.4)))
        else:  # the final rebuild and run report take ~0.1 s after the last job's line
            moments.append(Moment("end", 0.0, None, rng.uniform(0, 0.06)))
    return moments


class Run:
    """One `render --plain` in its own session; its log lines arrive on a queue."""

    def __init__(self, catalogue: Path, library: Path):
        self.started_s = time.monotonic()
        self.process = subprocess.Popen(
            [*CLI, "render", str(catalogue), "--plain", "--library", str(library)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.process.stderr:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, pattern: re.Pattern | str, count: int = 1, timeout_s: float = 60) -> re.Match | None:
        """The `count`-th line matching `pattern`, or None once the run has ended."""
        deadline = time.monotonic() + timeout_s
        seen = 0
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                return None
            self.log.append(line)
            match = re.search(pattern, line)
            if match:
                seen += 1
                if seen == count:
                    return match
        raise AssertionError(f"no {pattern!r} line within {timeout_s} s: {self.log}")

    def kill(self) -> bool:
        """SIGKILL the run, then whatever it started; True if it was still running.
        A run that ended on its own must have succeeded: a rerun after a kill
        that fails is what this test is here to catch."""
        alive = self.process.poll() is None
        for send in (os.kill, os.killpg):
            with contextlib.suppress(ProcessLookupError):
                send(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        if alive and self.process.returncode == -signal.SIGKILL:
            return True
        while (line := self.lines.get(timeout=10)) is not None:
            self.log.append(line)
        assert self.process.returncode == 0, "\n".join(self.log)
        return False


def run_and_kill(catalogue: Path, library: Path, moment: Moment, seconds_per_job: float) -> bool:
    """Start a run and kill it at `moment`; True if it was killed while running."""
    remaining = 3 - sum(1 for item in manifest_items(library) if item["status"] == "completed")
    run = Run(catalogue, library)
    if moment.kind == "time":
        time.sleep(moment.fraction * remaining * seconds_per_job)
        return run.kill()
    plan = run.wait_for(PLAN_LINE)
    to_render = int(plan.group(1)) if plan else 0
    if moment.kind == "phase" and to_render:
        # Squared, so earlier jobs come up more often: a kill in the last job
        # ends a chain, and chains are what cost time.
        job = 1 + int(moment.fraction**2 * to_render)
        found = run.wait_for(rf": {moment.phase}$", count=job)
    else:
        found = run.wait_for(END_LINE, count=to_render) if to_render else plan
    if found is not None:
        time.sleep(moment.delay_s)
    return run.kill()


def rows(library: Path) -> set[tuple]:
    # Not the duration: it comes from the TTS engine, whose output length is
    # the speech stage's concern; what a crash could break is rows and files.
    keys = ("entry_id", "language", "job_id", "status", "width", "height")
    return {tuple(item[k] for k in keys) for item in manifest_items(library)}


def assert_rows_point_at_whole_files(library: Path, after: str) -> None:
    """What must hold right after a kill: orphans and .tmp-* leftovers are
    allowed (the next run removes them), a row naming a file that is missing
    or not the size it was committed with is not. (Decoding every file is
    left to the end of each chain, to keep this quick.)"""
    if not (library / "manifest.json").exists():
        return
    for item in json.loads((library / "manifest.json").read_text(encoding="utf-8"))["items"]:
        sizes = item["telemetry"].get("file_sizes_bytes", {}) if item["status"] == "completed" else {}
        for key, size in sizes.items():
            path = library / item[key]
            assert path.is_file() and path.stat().st_size == size, f"after a kill at {after}: {path}"


def assert_equals_reference(library: Path, reference: Path) -> None:
    assert rows(library) == rows(reference)
    assert not library_problems(library), library_problems(library)
    job_ids = {item["job_id"] for item in manifest_items(library)}
    with sqlite3.connect(library / "library.sqlite") as db:
        assert {row[0] for row in db.execute("SELECT job_id FROM items")} == job_ids
    page = (library / "index.html").read_text(encoding="utf-8")
    assert {row["job_id"] for row in json.loads(DATA_BLOCK.search(page).group(1))["items"]} == job_ids


@pytest.mark.slow
def test_kill_9_anywhere_then_rerun_gives_the_clean_library(trio, tmp_path: Path):
    moments = plan_moments(random.Random(SEED), MOMENTS)
    seconds_per_job = trio.seconds / 3
    survived: list[str] = []
    missed: list[str] = []
    chains = 0
    readers: list[LibraryReader] = []
    library = None
    for moment in moments:
        if len(survived) == KILLS:
            break
        if library is None:
            chains += 1
            library = tmp_path / f"library-{chains}"
            readers.append(LibraryReader(library).__enter__())
        killed = run_and_kill(trio.project.catalogue, library, moment, seconds_per_job)
        (survived if killed else missed).append(moment.label())
        assert_rows_point_at_whole_files(library, moment.label())
        if len(rows(library)) == 3 and all(row[3] == "completed" for row in rows(library)):
            finish_chain(trio, library)
            readers[-1].__exit__(None, None, None)
            library = None
    if library is not None:
        finish_chain(trio, library)
        readers[-1].__exit__(None, None, None)
    assert len(survived) >= KILLS, f"only {len(survived)} kills landed; the runs outlived {missed}"
    problems = [p for reader in readers for p in reader.problems]
    assert not problems, problems
    assert sum(reader.samples for reader in readers) > 100
    print(f"\n{len(survived)} kills survived in {chains} chains: {survived}; outlived: {missed}")


def finish_chain(trio, library: Path) -> None:
    done = render(trio.project, library)
    assert done.returncode == 0, done.stderr
    assert_equals_reference(library, trio.library)
