"""KV caches that live in host memory and visit the compute device one layer at a time.

A `CacheRing` holds, per streamed tensor list (a step cache's keys, values and
their fp8 scales; the cond cache's keys and values), one host tensor per layer
(pinned) and `num_slots` device tensors; the cache's per-layer entry for layer
l is a permanent view of slot l mod k, so the attention code reads and writes
caches exactly as it does resident ones.

Each pass (one DiT call, or the sink prefill) first says what it reads and
writes (`set_pass`): a denoising call reads its window of the ring except the
tokens it is about to write (a quarter less traffic once the ring is full)
and writes back only the block it appended; the prefill writes the whole sink
and reads nothing. Token ranges are on dim 1 of (1, tokens, heads, head_dim).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from avatar_batch.render.liveavatar.dit.rings import CopyEngine, LayerRing
from avatar_batch.render.liveavatar.host_memory import carve_like

TokenRange = tuple[int, int]  # [start, end) on the token dim


@dataclass
class _Member:
    host: list[torch.Tensor]  # per layer
    device: list[torch.Tensor]  # per layer: views of the slots (layer l -> slot l mod k)


def spans_without(window_end: int, write: TokenRange) -> list[TokenRange]:
    """[0, window_end) minus the written range: the tokens a call must copy in."""
    start, end = write
    return [r for r in ((0, min(start, window_end)), (end, window_end)) if r[1] > r[0]]


class CacheRing(LayerRing):
    """Slots for every layer of some caches; the caches read and write through the slot views."""

    def __init__(self, engine: CopyEngine, num_layers: int, num_slots: int):
        super().__init__(engine, list(range(num_layers)), num_slots, wraps=False)
        self.num_layers = num_layers
        self._members: list[_Member] = []
        self._reads: list[tuple[int, list[TokenRange]]] = []
        self._writes: list[tuple[int, list[TokenRange]]] = []

    def add(self, shape: tuple[int, ...], dtype: torch.dtype) -> tuple[int, list[torch.Tensor]]:
        """A new per-layer tensor list streamed through this ring: (member id, device views per layer)."""
        slots = [
            self.engine.shared_with_side_streams(torch.empty(shape, dtype=dtype, device=self.engine.device))
            for _ in range(self.num_slots)
        ]
        host = carve_like(shape, dtype, self.num_layers, self.engine.pin)  # one pinned buffer per layer rounds up
        device = [slots[self.slot_of(layer)] for layer in range(self.num_layers)]
        self._members.append(_Member(host, device))
        return len(self._members) - 1, device

    @property
    def host_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for m in self._members for t in m.host)

    def set_pass(
        self, reads: Sequence[tuple[int, list[TokenRange]]], writes: Sequence[tuple[int, list[TokenRange]]]
    ) -> None:
        """What the next pass copies in before each layer and back after it, per member."""
        self._reads, self._writes = list(reads), list(writes)

    def copy_in(self, layer: int, slot: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [
            (self._members[m].host[layer][:, a:b], self._members[m].device[layer][:, a:b])
            for m, spans in self._reads
            for a, b in spans
        ]

    def write_back(self, layer: int, slot: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [
            (self._members[m].device[layer][:, a:b], self._members[m].host[layer][:, a:b])
            for m, spans in self._writes
            for a, b in spans
        ]

    def slot_tensors(self, slot: int) -> list[torch.Tensor]:
        return [m.device[slot] for m in self._members]
