"""`LocalPool`: one spawned worker process per GPU of this machine.

spawn, not fork: a forked child would inherit the driver's threads and any
CUDA state, and CUDA cannot be re-initialised in a fork. Each worker gets its
own CUDA_VISIBLE_DEVICES (GPUs dealt round-robin, so two workers can share one
GPU) and a pipe to the driver; one reader thread per worker turns what arrives
on the pipe, or its end (the worker died), into events.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import queue
import signal
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from avatar_batch.executors import local_worker
from avatar_batch.executors.protocol import Died, Done, Event, Ready, Task, WorkFactory

STOP_GRACE_S = 10.0  # a terminated worker gets this long before SIGKILL


class LocalPool:
    def __init__(self, factory: WorkFactory, devices: Sequence[str | None]):
        self.names = tuple(f"w{index}" for index in range(len(devices)))
        self._factory = factory
        self._devices = dict(zip(self.names, devices))
        self._processes: dict[str, Any] = {}
        self._pipes: dict[str, Connection] = {}
        self._readers: list[threading.Thread] = []
        self._closing = threading.Event()
        self._join_lock = threading.Lock()  # two threads must never reap one child

    def pids(self) -> dict[str, int | None]:
        return {name: process.pid for name, process in self._processes.items()}

    def start(self, events: queue.Queue[Any]) -> None:
        context = multiprocessing.get_context("spawn")
        blob = pickle.dumps(self._factory)
        for name in self.names:
            env = self._worker_env(self._devices[name])
            ours, theirs = context.Pipe(duplex=True)
            process = context.Process(
                target=local_worker.main,
                args=(theirs, blob, env, os.getpid()),
                name=f"avatar-batch-{name}",
                daemon=True,  # multiprocessing also ends it if the driver exits normally
            )
            process.start()
            theirs.close()
            self._processes[name], self._pipes[name] = process, ours
            reader = threading.Thread(target=self._read, args=(name, events), daemon=True, name=f"read-{name}")
            reader.start()
            self._readers.append(reader)

    def _worker_env(self, device: str | None) -> dict[str, str]:
        # CPU workers keep torch's default thread count, as a one-process run
        # does: the thread count changes CPU float reduction order, and the
        # frames must not depend on --workers. (Set OMP_NUM_THREADS yourself to
        # split the cores; every run then uses it alike.)
        return {"CUDA_VISIBLE_DEVICES": "" if device is None else device}

    def send(self, worker: str, task: Task) -> None:
        # A dead worker's pipe refuses the task; its reader thread reports Died.
        with contextlib.suppress(OSError):
            self._pipes[worker].send(task)

    def close(self, interrupted: bool = False) -> None:
        self._closing.set()
        for name, process in self._processes.items():
            if interrupted:
                process.terminate()
            else:
                with contextlib.suppress(OSError):  # already gone
                    self._pipes[name].send(None)
        for process in self._processes.values():
            with self._join_lock:
                process.join(STOP_GRACE_S)
                if process.is_alive():
                    process.kill()
                    process.join()
        for reader in self._readers:
            reader.join()  # each sees its pipe end once its worker has exited
        for pipe in self._pipes.values():
            pipe.close()

    def _read(self, name: str, events: queue.Queue[Event]) -> None:
        pipe, device = self._pipes[name], self._devices[name]
        broken = None
        while True:
            try:
                message = pipe.recv()
            except (EOFError, OSError):
                break
            if message[0] == "ready":
                where = f"GPU {device}, pid {message[1]}" if device is not None else f"CPU, pid {message[1]}"
                events.put(Ready(name, where))
            elif message[0] == "broken":
                broken = message[1]
            else:
                _, key, result, error = message
                events.put(Done(name, key, result, error))
        if not self._closing.is_set():
            process = self._processes[name]
            with self._join_lock:
                process.join(STOP_GRACE_S)
            events.put(Died(name, f"could not start: {broken}" if broken else _exit_reason(process.exitcode)))


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit code {exitcode}"
