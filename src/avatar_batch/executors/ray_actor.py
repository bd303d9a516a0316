"""The Ray actor behind `ray_pool.RayPool`: one per GPU, the model loaded once.

A node of the cluster need not see the driver's disk: the actor receives the
task's input files as bytes, works in a private temporary folder and returns
the files the work created (the finished video, a few MB) as bytes. Ray sets
CUDA_VISIBLE_DEVICES for an actor that asks for a GPU. Imports no Ray: the
pool wraps this class with `ray.remote`.
"""

from __future__ import annotations

import os
import pickle
import socket
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from avatar_batch.executors.protocol import Task


class RenderActor:
    def __init__(self, factory_blob: bytes):
        self._work = pickle.loads(factory_blob)()

    def where(self) -> str:
        gpus = os.environ.get("CUDA_VISIBLE_DEVICES") or "none"
        return f"{socket.gethostname()}, GPU {gpus}, pid {os.getpid()}"

    def run(self, task: Task, inputs: Mapping[str, bytes]) -> tuple[Any, dict[str, bytes]]:
        """Work on a copy of the task's folder; return (result, new files)."""
        with tempfile.TemporaryDirectory(prefix="avatar-batch-") as tmp:
            folder = Path(tmp)
            for name, data in inputs.items():
                (folder / name).write_bytes(data)
            result = self._work(task, folder)
            made = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name not in inputs}
        return result, made
