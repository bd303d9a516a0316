"""Pinned host buffers carved from power-of-two slabs.

torch's pinned-memory allocator rounds every request up to the next power of
two (CachingHostAllocator). One pinned buffer per streamed DiT layer (0.84 GB in
bf16) takes 1 GiB, and umT5's 2.1 GB embedding takes 4 GiB: the streamed runs
on an H200 held 12-14 GiB more host memory than their plan. Asking instead for
slabs whose sizes already are powers of two, and carving the buffers out of
them back to back, leaves only the tail of each slab unused.

`slab_plan` is the pure arithmetic; `carve` allocates (pinned where a CUDA
device will read the buffers, plain memory otherwise, same layout).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

# Buffers start on this boundary inside a slab: any dtype's alignment, and the
# copy engine's preferred one.
ALIGNMENT_BYTES = 512


def _aligned(nbytes: int) -> int:
    return -(-nbytes // ALIGNMENT_BYTES) * ALIGNMENT_BYTES


def _power_of_two_at_most(nbytes: int) -> int:
    return 1 << (nbytes.bit_length() - 1)


def _power_of_two_at_least(nbytes: int) -> int:
    return 1 << (nbytes - 1).bit_length()


def slab_plan(sizes_bytes: Sequence[int]) -> list[tuple[int, list[int]]]:
    """(slab bytes, offsets of the buffers it holds) covering `sizes_bytes` in order.
    Each slab is the largest power of two the remaining buffers fill (or the
    smallest that holds the next buffer), so at most one buffer's size is lost per slab."""
    strides = [_aligned(max(1, n)) for n in sizes_bytes]
    plan: list[tuple[int, list[int]]] = []
    first = 0
    while first < len(strides):
        remaining = sum(strides[first:])
        slab = max(_power_of_two_at_most(remaining), _power_of_two_at_least(strides[first]))
        offsets, used = [], 0
        while first < len(strides) and used + strides[first] <= slab:
            offsets.append(used)
            used += strides[first]
            first += 1
        plan.append((slab, offsets))
    return plan


def carve(sizes_bytes: Sequence[int], pin: bool) -> list[torch.Tensor]:
    """Flat uint8 buffers of `sizes_bytes`, in order, views into power-of-two slabs."""
    buffers: list[torch.Tensor] = []
    index = 0
    for slab_bytes, offsets in slab_plan(sizes_bytes):
        slab = torch.empty(slab_bytes, dtype=torch.uint8, pin_memory=pin)
        for offset in offsets:
            buffers.append(slab[offset : offset + sizes_bytes[index]])
            index += 1
    return buffers


def carve_like(shape: tuple[int, ...], dtype: torch.dtype, count: int, pin: bool) -> list[torch.Tensor]:
    """`count` tensors of `shape` and `dtype` (uninitialised), carved as above."""
    nbytes = torch.Size(shape).numel() * torch.empty((), dtype=dtype).element_size()
    return [raw.view(dtype).view(shape) for raw in carve([nbytes] * count, pin)]


def slab_waste_bytes(sizes_bytes: Sequence[int]) -> int:
    """Bytes the slabs hold beyond the buffers (alignment and tails)."""
    return sum(slab for slab, _ in slab_plan(sizes_bytes)) - sum(sizes_bytes)
