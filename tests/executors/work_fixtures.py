"""Work factories for executor tests. Importable by name in a spawned worker
(spawn hands the child the parent's sys.path), so no model is needed.

`GatedWork` blocks on a FIFO in the task's folder until the test opens it for
writing: the test knows the worker is mid-task (it posted `started`) and can
kill it or stop the pool there, with no sleeps and no race.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from avatar_batch.executors import Task

GATE = "gate.fifo"
STARTED = "started"


@dataclass(frozen=True)
class EchoWork:
    """Returns (payload, pid, CUDA_VISIBLE_DEVICES, OMP_NUM_THREADS) and writes out.txt."""

    def __call__(self):
        return echo


def echo(task: Task, folder: Path):
    (folder / "out.txt").write_text(f"{task.payload}\n", encoding="utf-8")
    if task.payload == "raise":
        raise ValueError("asked to fail")
    return (task.payload, os.getpid(), os.environ.get("CUDA_VISIBLE_DEVICES"), os.environ.get("OMP_NUM_THREADS"))


@dataclass(frozen=True)
class GatedWork:
    def __call__(self):
        return gated


def gated(task: Task, folder: Path):
    (folder / STARTED).write_text(str(os.getpid()), encoding="ascii")
    with open(folder / GATE, "rb") as gate:  # blocks until the test opens the writing end
        gate.read()
    return echo(task, folder)


@dataclass(frozen=True)
class BrokenWork:
    def __call__(self):
        raise RuntimeError("no model here")
