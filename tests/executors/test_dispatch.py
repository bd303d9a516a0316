"""The dispatcher with an in-thread fake pool: order, retries, failures, stats."""

from __future__ import annotations

import queue
from pathlib import Path

import pytest

from avatar_batch.executors import DispatchHooks, Task, run_tasks
from avatar_batch.executors.protocol import Died, Done, Ready


class FakePool:
    """Workers that answer at once from the dispatcher's own thread; `die`
    maps a job key to the worker deaths it causes (one per attempt)."""

    def __init__(self, count: int, die: dict[str, int] | None = None, broken: bool = False):
        self.names = tuple(f"w{i}" for i in range(count))
        self.die = dict(die or {})
        self.broken = broken
        self.sent: list[tuple[str, str, int]] = []
        self.closed: list[bool] = []

    def start(self, events):
        self.events = events
        for name in self.names:
            events.put(Died(name, "could not start: no model") if self.broken else Ready(name, f"fake {name}"))

    def send(self, worker, task):
        self.sent.append((worker, task.key, task.attempt))
        if self.die.get(task.key, 0) > 0:
            self.die[task.key] -= 1
            self.events.put(Died(worker, "killed by SIGKILL"))
        elif task.payload == "error":
            self.events.put(Done(worker, task.key, error="ValueError: bad"))
        else:
            self.events.put(Done(worker, task.key, result=f"made {task.key}"))

    def close(self, interrupted=False):
        self.closed.append(interrupted)


class Recorder:
    def __init__(self, fail_prepare: frozenset[str] = frozenset()):
        self.fail_prepare = fail_prepare
        self.finished: dict[str, str] = {}
        self.failed: dict[str, str] = {}
        self.notes: list[tuple[str, str]] = []

    def hooks(self) -> DispatchHooks:
        def prepare(job):
            if job[0] in self.fail_prepare:
                raise OSError("speech engine exploded")
            return Task(job[0], job[0], Path("/nowhere") / job[0], job[2], weight=job[1])

        return DispatchHooks(
            prepare=prepare,
            started=lambda job, task, worker: None,
            finished=lambda job, task, result, worker: self.finished.__setitem__(job[0], result),
            failed=lambda job, task, why: self.failed.__setitem__(job[0], str(why)),
            note=lambda worker, text: self.notes.append((worker, text)),
            weight=lambda job: job[1],
        )


JOBS = [("short", 1.0, "ok"), ("long", 9.0, "ok"), ("middle", 5.0, "ok"), ("also-middle", 5.0, "ok")]


def run(pool, jobs=JOBS, recorder=None):
    recorder = recorder or Recorder()
    stats = run_tasks(pool, jobs, recorder.hooks(), key=lambda job: job[0])
    return recorder, stats


def test_one_worker_takes_the_longest_job_first_and_ties_in_plan_order():
    pool = FakePool(1)
    recorder, stats = run(pool)
    assert [key for _, key, _ in pool.sent] == ["long", "middle", "also-middle", "short"]
    assert recorder.finished == {key: f"made {key}" for key, _, _ in JOBS}
    assert stats[0].jobs == 4 and stats[0].died is None and pool.closed == [False]


def test_a_dead_workers_job_is_retried_once_on_another_worker():
    pool = FakePool(2, die={"long": 1})
    recorder, stats = run(pool)
    attempts = [(worker, attempt) for worker, key, attempt in pool.sent if key == "long"]
    assert attempts[0][1] == 1 and attempts[1][1] == 2 and attempts[0][0] != attempts[1][0]
    assert recorder.finished["long"] == "made long" and not recorder.failed
    dead = [s for s in stats if s.died]
    assert len(dead) == 1 and dead[0].died == "killed by SIGKILL"
    assert sum(s.jobs for s in stats) == 4


def test_a_job_that_kills_two_workers_is_failed_and_the_rest_goes_on():
    pool = FakePool(3, die={"long": 2})
    recorder, _ = run(pool)
    assert "died while rendering it" in recorder.failed["long"]
    assert "already been retried once" in recorder.failed["long"]
    assert set(recorder.finished) == {"short", "middle", "also-middle"}


def test_when_every_worker_is_dead_the_remaining_jobs_fail_with_the_reason():
    recorder, stats = run(FakePool(2, broken=True))
    assert set(recorder.failed) == {key for key, _, _ in JOBS}
    assert all("every worker has died" in why and "no model" in why for why in recorder.failed.values())
    assert all(s.died for s in stats)


def test_failed_preparation_and_failed_work_are_recorded_not_fatal():
    jobs = [*JOBS, ("bad-work", 2.0, "error")]
    recorder, _ = run(FakePool(2), jobs, Recorder(fail_prepare=frozenset({"middle"})))
    assert recorder.failed == {"middle": "speech engine exploded", "bad-work": "ValueError: bad"}
    assert set(recorder.finished) == {"short", "long", "also-middle"}


def test_an_interrupt_stops_the_pool_at_once_and_propagates():
    pool = FakePool(1)
    recorder = Recorder()
    hooks = recorder.hooks()

    def interrupted(job, task, result, worker):
        raise KeyboardInterrupt

    hooks = DispatchHooks(hooks.prepare, hooks.started, interrupted, hooks.failed, hooks.note, hooks.weight)
    with pytest.raises(KeyboardInterrupt):
        run_tasks(pool, JOBS, hooks, key=lambda job: job[0])
    assert pool.closed == [True]


def test_no_jobs_still_starts_and_stops_cleanly():
    pool = FakePool(2)
    recorder, stats = run(pool, jobs=[])
    assert not pool.sent and pool.closed == [False] and [s.jobs for s in stats] == [0, 0]
    assert isinstance(queue.Queue(), queue.Queue)
