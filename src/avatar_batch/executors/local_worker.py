"""The child side of `local.LocalPool`: one process, one device, one model.

Runs in a fresh interpreter (spawn start method). The device is chosen by
setting CUDA_VISIBLE_DEVICES before the work factory is unpickled, so before
anything can import torch or touch CUDA. Messages on the pipe: the driver sends
a `Task` or None (stop); the worker sends ("ready", pid) once (or
("broken", why) when its work factory fails), then one ("done", key, result,
error) per task.

The worker ignores SIGINT: Ctrl-C reaches the whole process group, and the
driver alone decides how to stop (it terminates its workers, then removes the
staging folders). A worker whose driver is gone (even SIGKILLed) exits within
a second, so it never writes into a library another run has locked.
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
import time
from collections.abc import Mapping
from multiprocessing.connection import Connection

PARENT_POLL_S = 0.5
EXIT_ORPHANED = 3


def watch_parent(parent_pid: int, poll_s: float = PARENT_POLL_S) -> None:
    """Exit the whole process once the driver is gone (we are re-parented)."""
    while os.getppid() == parent_pid:
        time.sleep(poll_s)
    os._exit(EXIT_ORPHANED)


def main(conn: Connection, factory_blob: bytes, env: Mapping[str, str], parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.update(env)  # 1. the device, before torch can initialise CUDA
    threading.Thread(target=watch_parent, args=(parent_pid,), daemon=True, name="watch-parent").start()
    try:
        work = pickle.loads(factory_blob)()  # 2. the model's renderer, once per worker
    except Exception as exc:  # noqa: BLE001 - the driver reports why this worker never became ready
        conn.send(("broken", f"{exc.__class__.__name__}: {exc}"))
        return
    conn.send(("ready", os.getpid()))
    while True:  # 3. one task at a time until the driver says stop
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        try:
            result, error = work(task, task.folder), None
        except Exception as exc:  # noqa: BLE001 - reported to the driver, which records the job failed
            result, error = None, f"{exc.__class__.__name__}: {exc}"
        conn.send(("done", task.key, result, error))
