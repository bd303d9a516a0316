"""`render --workers N` through the command line (still renderer, real TTS and
ffmpeg): the same library as one process, a worker killed mid-job, Ctrl-C."""

from __future__ import annotations

import os
import signal

from typer.testing import CliRunner

from avatar_batch.cli import app
from tests.cli.workers_fixtures import (
    latest_report,
    library_fingerprint,
    read_until,
    start_render,
    use_recordings,
    worker_pids,
)
from tests.conftest import process_alive

EXIT_TIMEOUT_S = 300


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_two_workers_make_the_same_library_as_one_process(project, tmp_path):
    use_recordings(project)
    one, two = tmp_path / "one", tmp_path / "two"
    assert invoke("render", project.catalogue, "--plain", "--library", one).exit_code == 0
    result = invoke("render", project.catalogue, "--plain", "--library", two, "--workers", "2")
    assert result.exit_code == 0, result.output
    assert library_fingerprint(two) == library_fingerprint(one)

    report = latest_report(two)
    assert [w["worker"] for w in report["workers"]] == ["w0", "w1"]
    assert all(w["busy_s"] > 0 and 0 < w["utilisation"] <= 1 for w in report["workers"])
    assert sum(w["jobs"] for w in report["workers"]) == 2
    assert [j["job_id"] for j in report["jobs"]] == [j["job_id"] for j in latest_report(one)["jobs"]]
    assert latest_report(one)["workers"][0]["worker"] == "main"
    assert "worker w0: ready" in result.output and "worker w1: ready" in result.output

    # Same job ids: the other library is up to date for a one-process run.
    again = invoke("render", project.catalogue, "--plain", "--library", two)
    assert again.exit_code == 0 and "up to date 2" in again.output


def test_a_worker_killed_mid_job_loses_nothing(project):
    process = start_render(project, "--workers", "2")
    lines: list[str] = []
    rendering = read_until(process, ": rendering", lines)
    victim = rendering.split("worker ", 1)[1].split(":", 1)[0]
    # Stopping the driver first makes this exact: it cannot finish the run
    # (and reap the victim) before the kill lands, whatever the machine's load.
    os.kill(process.pid, signal.SIGSTOP)
    os.kill(worker_pids(lines)[victim], signal.SIGKILL)
    os.kill(process.pid, signal.SIGCONT)
    rest, _ = process.communicate(timeout=EXIT_TIMEOUT_S)
    output = "".join(lines) + rest
    assert process.returncode == 0, output
    assert sorted(i["status"] for i in project.manifest_items()) == ["completed", "completed"]
    verify = invoke("library", "verify", project.library)
    assert verify.exit_code == 0, verify.output
    died = [w for w in latest_report(project.library)["workers"] if w["died"]]
    assert [w["worker"] for w in died] == [victim] and died[0]["died"] == "killed by SIGKILL"
    assert not any(p.name.startswith(".tmp-") for p in project.library.rglob("*"))


def test_ctrl_c_stops_every_worker_and_leaves_nothing_behind(project):
    process = start_render(project, "--workers", "2")
    lines: list[str] = []
    read_until(process, ": rendering", lines)
    pids = worker_pids(lines)
    os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    rest, _ = process.communicate(timeout=EXIT_TIMEOUT_S)
    assert process.returncode == 130, "".join(lines) + rest
    assert len(pids) == 2 and not any(process_alive(pid) for pid in pids.values())
    assert not any(p.name.startswith(".tmp-") for p in project.library.rglob("*"))
    report = latest_report(project.library)
    assert report["outcome"] == "interrupted" and [w["worker"] for w in report["workers"]] == ["w0", "w1"]
