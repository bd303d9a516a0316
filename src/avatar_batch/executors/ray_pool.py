"""`RayPool`: one `RenderActor` per GPU of an existing Ray cluster.

The driver (this process) keeps the library: it ships a task's input files to
an actor and writes the files the actor made back into the task's staging
folder, so no shared filesystem is needed. Ray does the transport, placement
and failure detection; an actor that dies (its node lost, kill -9, a driver
error) raises RayActorError, which becomes a `Died` event. Ray is imported
only here and only when this pool starts.
"""

from __future__ import annotations

import pickle
import queue
import threading
from pathlib import Path
from typing import Any

from avatar_batch.core.errors import UnavailableError
from avatar_batch.core.fsio import write_bytes_atomic
from avatar_batch.executors.protocol import Died, Done, Event, Ready, Task, WorkFactory
from avatar_batch.executors.ray_actor import RenderActor


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise UnavailableError(
            "--executor ray needs Ray on this machine and on every node. Fix: pip install 'avatar-batch[ray]'"
        ) from exc
    return ray


def cluster_gpus(ray: Any) -> int:
    return int(ray.cluster_resources().get("GPU", 0))


class RayPool:
    """`workers=None`: one actor per GPU of the cluster (one CPU actor when it has none)."""

    def __init__(self, factory: WorkFactory, workers: int | None, address: str | None):
        self._ray = import_ray()
        self._started_ray = False
        if not self._ray.is_initialized():
            # address None: RAY_ADDRESS or a cluster started on this machine; "auto": the local `ray start` one.
            self._ray.init(address=address, log_to_driver=False)
            self._started_ray = True
        gpus = cluster_gpus(self._ray)
        count = workers or max(1, gpus)
        self.names = tuple(f"r{index}" for index in range(count))
        self._blob = pickle.dumps(factory)
        # An actor holds one GPU for its lifetime; on a cluster without GPUs (tests, CPU models) it holds a CPU.
        self._actor_class = self._ray.remote(num_gpus=1 if gpus else 0, num_cpus=0 if gpus else 1, max_restarts=0)(
            RenderActor
        )
        self._actors: dict[str, Any] = {}
        self._events: queue.Queue[Event] | None = None
        self._closing = threading.Event()

    def start(self, events: queue.Queue[Any]) -> None:
        self._events = events
        for name in self.names:
            actor = self._actor_class.remote(self._blob)
            self._actors[name] = actor
            self._watch(name, actor.where.remote(), lambda where, n=name: Ready(n, where))

    def send(self, worker: str, task: Task) -> None:
        inputs = {p.name: p.read_bytes() for p in task.folder.iterdir() if p.is_file()}
        reference = self._actors[worker].run.remote(task, inputs)
        self._watch(worker, reference, lambda answer, t=task, n=worker: self._store(n, t, answer))

    def close(self, interrupted: bool = False) -> None:
        self._closing.set()
        for actor in self._actors.values():
            self._ray.kill(actor)
        self._actors.clear()
        if self._started_ray:
            self._ray.shutdown()
            self._started_ray = False

    def _store(self, worker: str, task: Task, answer: tuple[Any, dict[str, bytes]]) -> Done:
        result, made = answer
        for name, data in made.items():
            write_bytes_atomic(task.folder / Path(name).name, data)
        return Done(worker, task.key, result)

    def _watch(self, worker: str, reference: Any, on_value: Any) -> None:
        """Wait for one remote call on a thread and post what it became."""

        def wait() -> None:
            ray = self._ray
            try:
                value = ray.get(reference)
            except ray.exceptions.RayTaskError as exc:  # the work raised: the job failed, the actor lives
                event: Event = Done(worker, "", error=_first_line(exc))
            except Exception as exc:  # noqa: BLE001 - actor or its node lost: the dispatcher retries the task
                event = Died(worker, f"Ray actor lost: {_first_line(exc)}")
            else:
                try:
                    event = on_value(value)
                except OSError as exc:  # writing the returned files failed (disk full...): the job failed
                    event = Done(worker, "", error=f"{exc.__class__.__name__}: {exc}")
            if not self._closing.is_set() and self._events is not None:
                self._events.put(event)

        threading.Thread(target=wait, daemon=True, name=f"ray-{worker}").start()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__
