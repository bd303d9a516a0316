"""The records and the one interface every executor shares.

A `Task` is one job ready to render: its inputs (speech included) already sit
in `folder`, a staging folder on the driver. A worker runs the work function
`work(task, folder_here) -> result` that its factory built once (model loaded
once per worker); `folder_here` is `task.folder` on this machine or a copy of
it elsewhere. Pools report what happens as events on one queue the driver
reads, so the driver waits on events, never on timers.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

Work = Callable[["Task", Path], Any]
WorkFactory = Callable[[], Work]


@dataclass(frozen=True)
class Task:
    key: str  # the job id: unique within a run
    label: str  # "entry/language", for people
    folder: Path  # staging folder on the driver, holding the job's inputs
    payload: Any  # what the work function needs; picklable
    weight: float  # expected cost (seconds of speech): the longest goes first
    attempt: int = 1


@dataclass(frozen=True)
class Ready:
    """A worker has loaded its work function and waits for a task."""

    worker: str
    where: str  # "GPU 0, pid 123" / "host-a, pid 456": for people and the report


@dataclass(frozen=True)
class Done:
    """A task came back. `error` is set when the work function raised."""

    worker: str
    key: str
    result: Any = None
    error: str | None = None


@dataclass(frozen=True)
class Died:
    """A worker is gone (killed, crashed, lost its node); its task, if any, is lost."""

    worker: str
    reason: str


Event = Ready | Done | Died


@dataclass
class WorkerStats:
    name: str
    where: str = "starting"
    jobs: int = 0
    busy_s: float = 0.0
    died: str | None = None

    def to_dict(self, wall_s: float) -> dict[str, Any]:
        return {
            "worker": self.name,
            "where": self.where,
            "jobs": self.jobs,
            "busy_s": round(self.busy_s, 3),
            "utilisation": round(self.busy_s / wall_s, 3) if wall_s > 0 else 0.0,
            "died": self.died,
        }


class WorkerPool(Protocol):
    """Workers that each run one task at a time.

    `start` launches them; each later posts `Ready` (or `Died`). `send` hands an
    idle worker a task and returns at once; `Done` or `Died` follows. `close`
    stops every worker (idempotent); `interrupted=True` means at once, without
    waiting for tasks to end."""

    names: tuple[str, ...]

    def start(self, events: queue.Queue[Any]) -> None: ...
    def send(self, worker: str, task: Task) -> None: ...
    def close(self, interrupted: bool = False) -> None: ...
