"""`LocalPool` with real spawned processes and model-free work: devices per
worker, a worker killed mid-task, an interrupt while busy, an orphaned worker.
Every wait is on an event (a queue, a FIFO, a process exit), never a sleep."""

from __future__ import annotations

import os
import queue
import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from avatar_batch.executors import Task
from avatar_batch.executors.local import LocalPool
from avatar_batch.executors.protocol import Died, Done, Ready
from tests.conftest import process_alive
from tests.executors.work_fixtures import GATE, STARTED, BrokenWork, EchoWork, GatedWork

EVENT_TIMEOUT_S = 120  # a generous bound on a busy machine; the tests never wait for it to pass


def task(folder: Path, key: str, payload: str = "hello") -> Task:
    folder.mkdir(parents=True, exist_ok=True)
    return Task(key, key, folder, payload, weight=1.0)


def next_event(events: queue.Queue, kind: type):
    event = events.get(timeout=EVENT_TIMEOUT_S)
    assert isinstance(event, kind), event
    return event


def ready_all(pool: LocalPool) -> queue.Queue:
    events: queue.Queue = queue.Queue()
    pool.start(events)
    ready = {next_event(events, Ready).worker for _ in pool.names}
    assert ready == set(pool.names)
    return events


def test_each_worker_sees_its_own_device_and_answers(tmp_path):
    pool = LocalPool(EchoWork(), ["3", "5"])
    events = ready_all(pool)
    try:
        for name in pool.names:
            pool.send(name, task(tmp_path / name, f"job-{name}", payload=name))
        answers = {}
        for _ in pool.names:
            done = next_event(events, Done)
            answers[done.worker] = done.result
        pool.send("w0", task(tmp_path / "bad", "bad", payload="raise"))
        failed = next_event(events, Done)
    finally:
        pool.close()
    assert answers["w0"][0] == "w0" and answers["w0"][2] == "3"
    assert answers["w1"][0] == "w1" and answers["w1"][2] == "5"
    assert answers["w0"][1] != answers["w1"][1] != os.getpid()
    assert failed.error == "ValueError: asked to fail"
    assert (tmp_path / "w0" / "out.txt").read_text() == "w0\n"


def test_a_worker_killed_mid_task_is_reported_dead_and_the_other_goes_on(tmp_path):
    pool = LocalPool(GatedWork(), [None, None])
    events = ready_all(pool)
    try:
        victim = task(tmp_path / "victim", "victim")
        os.mkfifo(victim.folder / GATE)
        pool.send("w0", victim)
        # Opening the FIFO's writing end returns once the worker has opened its
        # reading end: it is inside the task now.
        with open(victim.folder / GATE, "wb"):
            pid = int((victim.folder / STARTED).read_text())
            os.kill(pid, signal.SIGKILL)
            died = next_event(events, Died)
        assert died == Died("w0", "killed by SIGKILL")
        survivor = task(tmp_path / "survivor", "survivor", payload="again")
        os.mkfifo(survivor.folder / GATE)
        pool.send("w1", survivor)
        with open(survivor.folder / GATE, "wb"):
            pass  # let it finish
        done = next_event(events, Done)
        assert (done.worker, done.result[0]) == ("w1", "again")
    finally:
        pool.close()


def test_close_when_interrupted_stops_busy_workers(tmp_path):
    pool = LocalPool(GatedWork(), [None, None])
    ready_all(pool)
    pids = []
    for name in pool.names:
        busy = task(tmp_path / name, name)
        os.mkfifo(busy.folder / GATE)
        pool.send(name, busy)
        gate = open(busy.folder / GATE, "wb")  # noqa: SIM115 - held open so the worker stays mid-task
        pids.append(int((busy.folder / STARTED).read_text()))
    pool.close(interrupted=True)
    gate.close()
    assert not any(process_alive(pid) for pid in pids)


def test_cpu_workers_keep_the_thread_count_of_a_one_process_run(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    pool = LocalPool(EchoWork(), [None, None])
    events = ready_all(pool)
    try:
        pool.send("w0", task(tmp_path / "w0", "cpu"))
        done = next_event(events, Done)
    finally:
        pool.close()
    assert done.result[2:] == ("", None)


def test_a_worker_whose_factory_fails_reports_why(tmp_path):
    pool = LocalPool(BrokenWork(), [None])
    events: queue.Queue = queue.Queue()
    pool.start(events)
    try:
        died = next_event(events, Died)
    finally:
        pool.close()
    assert died.reason == "could not start: RuntimeError: no model here"


ORPHAN_DRIVER = textwrap.dedent(
    """
    import queue, sys
    from pathlib import Path
    from avatar_batch.executors import Task
    from avatar_batch.executors.local import LocalPool
    from tests.executors.work_fixtures import GatedWork

    pool = LocalPool(GatedWork(), [None])
    events = queue.Queue()
    pool.start(events)
    events.get()
    pool.send("w0", Task("k", "k", Path(sys.argv[1]), "x", 1.0))
    print(pool.pids()["w0"], flush=True)
    sys.stdin.read()  # until the test kills us
    """
)


def wait_for_exit(pid: int) -> bool:
    """True once `pid` (not our child) has exited; a pidfd turns readable then."""
    fd = os.pidfd_open(pid)
    try:
        return bool(select.select([fd], [], [], EVENT_TIMEOUT_S)[0])
    finally:
        os.close(fd)


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs Linux pidfds")
def test_workers_exit_by_themselves_when_the_driver_is_killed(tmp_path):
    folder = tmp_path / "job"
    folder.mkdir()
    os.mkfifo(folder / GATE)
    repo = Path(__file__).resolve().parents[2]
    driver = subprocess.Popen(
        [sys.executable, "-c", ORPHAN_DRIVER, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=repo,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))},
    )
    worker_pid = int(driver.stdout.readline())
    # We hold the FIFO's writing end: the worker stays blocked mid-task, so
    # only its watch on the driver can end it.
    with open(folder / GATE, "wb"):
        driver.kill()
        driver.wait(timeout=EVENT_TIMEOUT_S)
        assert wait_for_exit(worker_pid)
