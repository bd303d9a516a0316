"""Two runs on one library: started together, one renders and the other exits
75 at once; while a run holds the lock, every other writer (render, library
rebuild, library prune) is refused and changes nothing, and a reader polling
manifest.json, library.sqlite and index.html always sees a whole library."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.hardening.projects import CLI, cli, library_problems, manifest_items
from tests.hardening.reader import LibraryReader


def start(catalogue: Path, library: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [*CLI, "render", str(catalogue), "--plain", "--library", str(library)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def first_to_exit(processes: list[subprocess.Popen], timeout_s: float = 60) -> subprocess.Popen:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                return process
        time.sleep(0.02)
    raise AssertionError("no run exited in time")


def test_runs_started_together_one_renders_the_others_exit_75(trio, tmp_path: Path):
    library = tmp_path / "library"
    with LibraryReader(library) as reader:
        runs = [start(trio.project.catalogue, library) for _ in range(2)]
        try:
            loser = first_to_exit(runs)
            (winner,) = [run for run in runs if run is not loser]
            _, loser_err = loser.communicate(timeout=10)
            assert loser.returncode == 75, loser_err
            assert "lock" in loser_err and "Traceback" not in loser_err
            assert winner.poll() is None, "the loser should give up while the winner still renders"

            third = cli("render", trio.project.catalogue, "--plain", "--library", library)
            assert third.returncode == 75 and f"pid {winner.pid}" in third.stderr, third.stderr
            for command in ("rebuild", "prune"):
                refused = cli("library", command, library)
                assert refused.returncode == 75, refused.stderr

            _, winner_err = winner.communicate(timeout=120)
            assert winner.returncode == 0, winner_err
        finally:
            for run in runs:
                if run.poll() is None:
                    run.kill()
                    run.wait()
    assert len(list((library / "runs").glob("*.json"))) == 1  # refused runs wrote no report
    assert {i["job_id"] for i in manifest_items(library)} == {i["job_id"] for i in manifest_items(trio.library)}
    assert not library_problems(library)
    assert not reader.problems, reader.problems
    assert reader.samples > 20, (reader.samples, reader.retried)
