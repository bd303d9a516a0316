"""Letting go of the pages of weights read from a memory-mapped checkpoint file.

`load_pth` maps a `.pth` file (umT5: 11 GB) instead of reading it, so it costs
no memory until read. But each page a copy reads stays resident in the
mapping, and counts in the process's RSS, until the whole mapping goes: when
umT5 is copied to the GPU (helpers resident) or into pinned host buffers (helpers
lent, at their first visit), the file's pages and the copy coexist. On an H200
the process's RSS peaked 9.3 GiB above the job's in every run that held no
weights on the host, and lent runs peaked at the plan plus the whole of umT5
(benchmarks/results/NVIDIA-H200-20261203-int4.json, `peak_rss_gib`).

`release_file_pages` tells the kernel (madvise MADV_DONTNEED) that the pages of
tensors already copied are not needed: for a clean page of a private file
mapping that drops it from the process, and a later read faults it back in
from the file, so the tensor stays valid. In anonymous memory the same call
would zero the pages, so only ranges that lie inside a file mapping
(/proc/self/maps) are released; elsewhere (another OS, a tensor read whole)
it does nothing.

`to_device_releasing` moves a module tensor by tensor, releasing each source
tensor's pages once it is copied, so a move holds one tensor's pages at a time.
"""

from __future__ import annotations

import bisect
import ctypes
import mmap
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch

from avatar_batch.render.liveavatar.module_tensors import like, replace_tensors

MADV_DONTNEED = 4  # linux/mman.h
PROC_MAPS = Path("/proc/self/maps")


@dataclass(frozen=True)
class FileMappings:
    """This process's address ranges backed by a file, sorted by start."""

    starts: tuple[int, ...]
    ends: tuple[int, ...]

    @classmethod
    def now(cls, maps: Path = PROC_MAPS) -> FileMappings:
        """Lines: `start-end perms offset dev inode [path]`; a file mapping has an inode and a path."""
        spans = []
        for line in maps.read_text().splitlines() if maps.exists() else []:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[4] != "0" and fields[5].startswith("/"):
                start, end = (int(edge, 16) for edge in fields[0].split("-"))
                spans.append((start, end))
        spans.sort()
        return cls(tuple(s for s, _ in spans), tuple(e for _, e in spans))

    def covers(self, start: int, end: int) -> bool:
        """Whether [start, end) lies inside one file mapping."""
        index = bisect.bisect_right(self.starts, start) - 1
        return index >= 0 and end <= self.ends[index]


@cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def page_span(tensor: torch.Tensor) -> tuple[int, int]:
    """The whole pages holding `tensor`'s bytes (a mapping starts and ends on page boundaries)."""
    start = tensor.data_ptr()
    end = start + tensor.numel() * tensor.element_size()
    page = mmap.PAGESIZE
    return start // page * page, -(-end // page) * page


def release_file_pages(tensors: Iterable[torch.Tensor], mappings: FileMappings | None = None) -> int:
    """Drop the resident pages of the CPU tensors that lie in a file mapping; returns the bytes advised.
    Only for tensors never written since they were read: a written page of a private mapping
    would go back to the file's bytes (the helpers' weights are only ever read)."""
    if not sys.platform.startswith("linux"):
        return 0
    mappings = FileMappings.now() if mappings is None else mappings
    libc = _libc()
    released = 0
    for tensor in tensors:
        if tensor.device.type != "cpu" or tensor.numel() == 0:
            continue
        start, end = page_span(tensor)
        if (
            mappings.covers(start, end)
            and libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), MADV_DONTNEED) == 0
        ):
            released += end - start
    return released


def to_device_releasing(module: torch.nn.Module, device: torch.device | str) -> torch.nn.Module:
    """`module.to(device)`, releasing each memory-mapped source tensor's pages once it is copied."""
    device = torch.device(device)
    if device.type == "cpu":
        return module
    mappings = FileMappings.now()

    def moved(old: torch.Tensor) -> torch.Tensor:
        data = old.detach().to(device)
        release_file_pages([old], mappings)
        return like(old, data)

    replace_tensors(module, moved)
    return module
