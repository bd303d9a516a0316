"""Tensors of a safetensors shard read onto a device through page-locked staging buffers,
by several threads at once.

safetensors' own path (map the file, then `.to(device)` tensor by tensor) moved the
14B DiT's 32.6 GB of shards onto an H200 at 8.4 GB/s; reading the same bytes with
`readinto` into pinned buffers, each copied to the GPU on a side stream while the
other fills, 4 threads at once, at 13.7 GB/s
(`benchmarks/results/load-NVIDIA-H200-20261203.json`, `benchmarks/load_speed.py`).
Reading instead of mapping also leaves no file pages in the process's RSS.

Each thread (a `_Lane`) owns two staging buffers, a CUDA stream and two events; it
reads a contiguous run of tensors (the shard's tensors in file order, split into runs
of about equal bytes), and its stream is drained before the tensors are handed out,
so they are complete on every stream. On a CPU the staging buffers are plain memory
and each copy is synchronous: the same code, so the CPU tests read as the GPU does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from avatar_batch.render.liveavatar.checkpoint.headers import TensorInfo, read_header

READ_THREADS = 4
STAGING_BYTES = 32 * 2**20  # per buffer, two per thread: 256 MiB of pinned memory, which torch then caches


class ShardReader:
    """Reads tensors of safetensors files onto `device`; its staging buffers serve every read."""

    def __init__(self, device: torch.device, threads: int = READ_THREADS, staging_bytes: int = STAGING_BYTES):
        self.device = torch.device(device)
        self._lanes = [_Lane(self.device, staging_bytes) for _ in range(max(1, threads))]

    def read(self, path: Path, names: Sequence[str]) -> dict[str, torch.Tensor]:
        """`names` of the file at `path`, each in its stored dtype and shape on the device.
        Raises HeaderError for an unreadable header, KeyError for a name it lacks, and
        EOFError when the file ends before a tensor's bytes."""
        header = read_header(path)
        tensors = sorted((header.tensors[name] for name in names), key=lambda info: info.begin)
        runs = _runs_of_equal_bytes(tensors, len(self._lanes))
        with open(path, "rb", buffering=0) as handle:
            fd = handle.fileno()
            if len(runs) == 1:
                parts = [self._lanes[0].read(fd, header.data_start, runs[0])]
            else:
                with ThreadPoolExecutor(len(runs)) as pool:
                    jobs = [pool.submit(lane.read, fd, header.data_start, run) for lane, run in zip(self._lanes, runs)]
                    parts = [job.result() for job in jobs]
        return {name: tensor for part in parts for name, tensor in part.items()}


def _runs_of_equal_bytes(tensors: list[TensorInfo], count: int) -> list[list[TensorInfo]]:
    """`tensors` (in file order) cut into at most `count` contiguous runs of about equal bytes."""
    total = sum(t.end - t.begin for t in tensors)
    runs: list[list[TensorInfo]] = [[]]
    done = 0
    for info in tensors:
        if runs[-1] and done >= total * len(runs) / count:
            runs.append([])
        runs[-1].append(info)
        done += info.end - info.begin
    return [run for run in runs if run]


class _Lane:
    """One thread's staging: two buffers taking turns, each copied out on the lane's stream
    while the other fills."""

    def __init__(self, device: torch.device, staging_bytes: int):
        self.device = device
        self.on_gpu = device.type == "cuda"
        self.staging = [torch.empty(staging_bytes, dtype=torch.uint8, pin_memory=self.on_gpu) for _ in range(2)]
        self.stream = torch.cuda.Stream(device) if self.on_gpu else None
        self.copied = [torch.cuda.Event(), torch.cuda.Event()] if self.on_gpu else []
        self.turn = 0

    def read(self, fd: int, data_start: int, tensors: list[TensorInfo]) -> dict[str, torch.Tensor]:
        if self.stream is not None:
            # The new tensors may reuse memory whose last readers are still queued on the
            # default stream (a block the loader has just packed away): copy after them.
            self.stream.wait_stream(torch.cuda.current_stream(self.device))
        flat = {}
        for info in tensors:
            flat[info.name] = torch.empty(info.end - info.begin, dtype=torch.uint8, device=self.device)
            self._fill(fd, data_start + info.begin, flat[info.name])
        if self.stream is not None:
            self.stream.synchronize()  # every copy has landed: the tensors are whole on any stream
        return {info.name: flat[info.name].view(getattr(torch, info.dtype)).reshape(info.shape) for info in tensors}

    def _fill(self, fd: int, offset: int, out: torch.Tensor) -> None:
        done, size = 0, out.numel()
        while done < size:
            buffer = self.staging[self.turn]
            if self.copied:
                self.copied[self.turn].synchronize()  # this buffer's last copy has left it
            length = min(buffer.numel(), size - done)
            got = os.preadv(fd, [buffer.numpy().data[:length]], offset + done)
            if got <= 0:
                raise EOFError(f"the file ends {size - done} bytes into a tensor")
            if self.stream is not None:
                with torch.cuda.stream(self.stream):
                    out[done : done + got].copy_(buffer[:got], non_blocking=True)
                    self.copied[self.turn].record(self.stream)
            else:
                out[done : done + got].copy_(buffer[:got])
            done += got
            self.turn = 1 - self.turn
