"""Executors: run a batch's render jobs on several workers at once.

One small interface (`protocol.WorkerPool`) with two implementations:
`local.LocalPool` (one spawned process per GPU on this machine) and
`ray_pool.RayPool` (one Ray actor per GPU of a cluster). `dispatch.run_tasks`
drives either: longest job first, the next jobs' preparation (speech) ahead on
the driver's CPU, a job retried once when its worker dies, busy seconds per
worker. Executors know nothing of speech, models or the library: `batch`
hands them a picklable work factory and the callbacks that touch the library,
so the driver stays the library's only writer. Imports only `core` and itself.
"""

from avatar_batch.executors.dispatch import DispatchHooks, run_tasks
from avatar_batch.executors.protocol import Task, WorkerPool, WorkerStats

__all__ = ["DispatchHooks", "Task", "WorkerPool", "WorkerStats", "run_tasks"]
