"""The driver loop shared by every executor.

Longest job first; each job's preparation (speech synthesis: CPU work on the
driver) runs ahead on a small thread pool, so a worker that finishes finds its
next task ready instead of waiting for TTS; a task whose worker dies is retried
once on another worker, else failed with the reason. Every library write
happens in the caller's thread through `DispatchHooks`, one at a time.
"""

from __future__ import annotations

import queue
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from avatar_batch.executors.protocol import Died, Done, Event, Ready, Task, WorkerPool, WorkerStats

PREPARE_THREADS = 2  # TTS + loudness per job take seconds; a GPU render takes minutes


@dataclass(frozen=True)
class DispatchHooks:
    """What the driver does at each step; `batch` supplies these."""

    prepare: Callable[[Any], Task]  # job -> Task; runs on a preparation thread; raises to fail the job
    started: Callable[[Any, Task, str], None]  # (job, task, worker)
    finished: Callable[[Any, Task, Any, str], None]  # (job, task, result, worker): commit it
    failed: Callable[[Any, Task | None, str | BaseException], None]  # (job, its task if prepared, why)
    note: Callable[[str, str], None]  # (worker, what it is doing), for the per-worker line
    weight: Callable[[Any], float]  # expected cost of a job; the largest goes first


@dataclass(frozen=True)
class _Prepared:
    key: str
    task: Task | None
    error: BaseException | None


@dataclass
class _State:
    live: set[str]
    idle: deque[str] = field(default_factory=deque)
    ready: list[Task] = field(default_factory=list)
    busy: dict[str, tuple[Task, float]] = field(default_factory=dict)
    preparing: int = 0
    last_death: str = ""

    def all_dead(self) -> str:
        return f"every worker has died (last: {self.last_death}); rerun to render it"


def run_tasks(
    pool: WorkerPool,
    jobs: Sequence[Any],
    hooks: DispatchHooks,
    key: Callable[[Any], str],
    stats_out: list[WorkerStats] | None = None,
) -> list[WorkerStats]:
    """Run every job on `pool`; return each worker's statistics (also appended
    to `stats_out` at the start and kept current, so an interrupted run can
    still report them). On KeyboardInterrupt (or any error) every worker is
    stopped at once and the preparation threads are drained before the
    exception goes on."""
    events: queue.Queue[Event | _Prepared] = queue.Queue()
    job_of = {key(job): job for job in jobs}
    order = {key(job): index for index, job in enumerate(jobs)}
    # sorted() is stable: equal weights keep the plan's order.
    waiting = deque(sorted(jobs, key=lambda job: -hooks.weight(job)))
    stats = {name: WorkerStats(name) for name in pool.names}
    if stats_out is not None:
        stats_out.extend(stats.values())
    state = _State(live=set(pool.names))
    preparer = ThreadPoolExecutor(PREPARE_THREADS, thread_name_prefix="prepare")
    try:
        pool.start(events)
        while True:
            _prepare_ahead(state, waiting, preparer, hooks, key, events)
            _send_ready(state, pool, hooks, job_of, order)
            if not (waiting or state.ready or state.busy or state.preparing):
                break
            _handle(events.get(), state, stats, hooks, job_of, waiting)
    except BaseException:
        pool.close(interrupted=True)
        preparer.shutdown(wait=True, cancel_futures=True)
        raise
    pool.close()
    preparer.shutdown(wait=True)
    return [stats[name] for name in pool.names]


def _prepare_ahead(state, waiting, preparer, hooks, key, events) -> None:
    # One prepared task per live worker is enough: each finished render finds
    # the next one ready. Without workers, keep preparing only to fail fast.
    while waiting and state.preparing + len(state.ready) < max(1, len(state.live)):
        job = waiting.popleft()
        state.preparing += 1
        future = preparer.submit(hooks.prepare, job)
        future.add_done_callback(lambda done, k=key(job): events.put(_outcome(k, done)))


def _outcome(job_key: str, done: Future) -> _Prepared:
    if done.cancelled():
        return _Prepared(job_key, None, RuntimeError("preparation cancelled"))
    error = done.exception()
    return _Prepared(job_key, None if error else done.result(), error)


def _send_ready(state, pool, hooks, job_of, order) -> None:
    if not state.live:
        for task in state.ready:
            hooks.failed(job_of[task.key], task, state.all_dead())
        state.ready.clear()
        return
    while state.idle and state.ready:
        task = max(state.ready, key=lambda t: (t.weight, -order[t.key]))
        state.ready.remove(task)
        worker = state.idle.popleft()
        state.busy[worker] = (task, time.perf_counter())
        hooks.started(job_of[task.key], task, worker)
        pool.send(worker, task)


def _handle(event, state, stats, hooks, job_of, waiting) -> None:
    if isinstance(event, _Prepared):
        state.preparing -= 1
        if event.task is not None:
            state.ready.append(event.task)
        else:
            hooks.failed(job_of[event.key], None, event.error or RuntimeError("preparation failed"))
    elif isinstance(event, Ready):
        stats[event.worker].where = event.where
        state.idle.append(event.worker)
        hooks.note(event.worker, f"ready ({event.where})")
    elif isinstance(event, Done):
        task, started_s = state.busy.pop(event.worker)
        stats[event.worker].jobs += 1
        stats[event.worker].busy_s += time.perf_counter() - started_s
        state.idle.append(event.worker)
        hooks.note(event.worker, "idle")
        job = job_of[task.key]
        if event.error is not None:
            hooks.failed(job, task, event.error)
        else:
            hooks.finished(job, task, event.result, event.worker)
    elif isinstance(event, Died):
        _worker_died(event, state, stats, hooks, job_of, waiting)


def _worker_died(event: Died, state, stats, hooks, job_of, waiting) -> None:
    state.live.discard(event.worker)
    if event.worker in state.idle:
        state.idle.remove(event.worker)
    stats[event.worker].died = state.last_death = event.reason
    hooks.note(event.worker, f"died: {event.reason}")
    lost = state.busy.pop(event.worker, None)
    if lost is not None:
        task, started_s = lost
        stats[event.worker].busy_s += time.perf_counter() - started_s
        reason = f"worker {event.worker} died while rendering it ({event.reason})"
        if task.attempt == 1 and state.live:
            state.ready.append(replace(task, attempt=2))
        else:
            retried = "; it had already been retried once" if task.attempt > 1 else "; no other worker was left"
            hooks.failed(job_of[task.key], task, reason + retried)
    if not state.live:
        while waiting:
            hooks.failed(waiting.popleft(), None, state.all_dead())
