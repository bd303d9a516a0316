"""Rings of per-layer slots on the compute device, fed from pinned host memory (issue 11).

A `LayerRing` keeps the data of some DiT layers (their weights, or their KV
caches) in host memory and `num_slots` slots on the compute device. Layer
`order[j]` always lives in slot `j mod num_slots`, so whatever points into a
slot (a block's parameters, a cache's per-layer tensor) is a permanent view:
addresses never change and compiled graphs never see a new tensor.

The copies are ordered by events, three per use of a slot:

1. prefetch (side stream `h2d`): wait until the slot's previous occupant is
   released, copy the layer in, record `loaded`;
2. wait (compute stream): wait for `loaded` before the layer's kernels;
3. release (compute stream, then `d2h`): record `done` after the layer's
   kernels; copy back what the layer wrote (caches only) on `d2h` after
   `done`; the slot is free once that copy (or, without one, `done`) is.

Copies into a slot start as soon as it is free, so with k slots the copy of a
layer overlaps the compute of the k - 1 layers before it. Host-to-device and
device-to-host copies run on separate streams (PCIe moves both ways at once).

On the CPU the same slots, order and checks run with synchronous copies and
no events: the tests exercise the ring logic without CUDA.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch


@dataclass
class CopyCounters:
    """Bytes moved between host and compute device, for telemetry and benchmarks."""

    host_to_device: int = 0
    device_to_host: int = 0


class CopyEngine:
    """Side streams and events on CUDA; synchronous copies on the CPU."""

    def __init__(self, device: torch.device):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.h2d = torch.cuda.Stream(self.device) if self.cuda else None
        self.d2h = torch.cuda.Stream(self.device) if self.cuda else None
        self.counters = CopyCounters()

    @property
    def pin(self) -> bool:
        """Host buffers are page-locked only when a CUDA device will read them."""
        return self.cuda

    def record_compute(self) -> torch.cuda.Event | None:
        if not self.cuda:
            return None
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(self.device))
        return event

    def wait_compute(self, event: torch.cuda.Event | None) -> None:
        if event is not None:
            torch.cuda.current_stream(self.device).wait_event(event)

    def copy(
        self, pairs: Sequence[tuple[torch.Tensor, torch.Tensor]], after: torch.cuda.Event | None, to_device: bool
    ) -> torch.cuda.Event | None:
        """Copy each (src, dst) on the side stream of that direction after `after`; the event of the last copy."""
        nbytes = sum(src.numel() * src.element_size() for src, _ in pairs)
        if to_device:
            self.counters.host_to_device += nbytes
        else:
            self.counters.device_to_host += nbytes
        if not self.cuda:
            for src, dst in pairs:
                dst.copy_(src)
            return None
        stream = self.h2d if to_device else self.d2h
        assert stream is not None
        with torch.cuda.stream(stream):
            if after is not None:
                stream.wait_event(after)
            for src, dst in pairs:
                dst.copy_(src, non_blocking=True)
            event = torch.cuda.Event()
            event.record(stream)
        return event

    def shared_with_side_streams(self, tensor: torch.Tensor) -> torch.Tensor:
        """Mark a slot the side streams copy into or out of: when it is freed, the
        allocator waits for their queued copies before handing its memory out again
        (or unmapping it under memory pressure, which would fault a copy in flight)."""
        if self.cuda:
            assert self.h2d is not None and self.d2h is not None
            tensor.record_stream(self.h2d)
            tensor.record_stream(self.d2h)
        return tensor

    def synchronize(self) -> None:
        if self.cuda:
            assert self.h2d is not None and self.d2h is not None
            self.h2d.synchronize()
            self.d2h.synchronize()


class StaleSlotError(RuntimeError):
    """A layer was about to run on a slot that does not hold it (a ring bug, never user input)."""


@dataclass
class _Slot:
    holds: int | None = None  # the layer whose copy was last queued into the slot
    loaded: torch.cuda.Event | None = None
    free: torch.cuda.Event | None = None
    in_use: bool = False


@dataclass
class LayerRing:
    """Slots for the layers in `order` (the order they run in); subclasses say what a copy moves.

    `wraps`: the next pass runs the same layers with the same host data (weights),
    so releasing a slot prefetches its next occupant even across passes. Caches
    change between passes (which steps a call reads), so their rings do not wrap.
    """

    engine: CopyEngine
    order: list[int]
    num_slots: int
    wraps: bool = False
    poison_released: bool = False  # tests: fill a released slot with NaN/0xFF before its next copy
    _slots: list[_Slot] = field(init=False)
    _index: dict[int, int] = field(init=False)

    def __post_init__(self) -> None:
        if self.num_slots < 1:
            raise ValueError(f"a layer ring needs at least one slot, got {self.num_slots}")
        self.num_slots = min(self.num_slots, max(1, len(self.order)))
        self._slots = [_Slot() for _ in range(self.num_slots)]
        self._index = {layer: j for j, layer in enumerate(self.order)}
        # Host buffers are pinned memory that the allocator hands out again once freed, and
        # copies of slices of them record no event: wait for queued copies before they go.
        weakref.finalize(self, self.engine.synchronize)

    # --- what subclasses provide -------------------------------------------------------

    def copy_in(self, layer: int, slot: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(host, device) pairs that fill `slot` with `layer`."""
        raise NotImplementedError

    def write_back(self, layer: int, slot: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(device, host) pairs the layer's compute changed; none for weights."""
        return []

    def slot_tensors(self, slot: int) -> list[torch.Tensor]:
        """The slot's device tensors (poisoned in tests)."""
        raise NotImplementedError

    # --- the ring ------------------------------------------------------------------------

    def streams(self, layer: int) -> bool:
        return layer in self._index

    def slot_of(self, layer: int) -> int:
        return self._index[layer] % self.num_slots

    def start_pass(self) -> None:
        """Queue the first layers of a pass into their slots unless already queued.
        A slot left in use by an interrupted pass is released after the kernels already queued."""
        for slot in self._slots:
            if slot.in_use:
                slot.free, slot.in_use = self.engine.record_compute(), False
        for layer in self.order[: self.num_slots]:
            slot = self._slots[self.slot_of(layer)]
            if slot.holds != layer:
                self._prefetch(layer)

    def wait(self, layer: int) -> None:
        """Before `layer` runs: the compute stream waits for its copy."""
        if not self.streams(layer):
            return
        slot = self._slots[self.slot_of(layer)]
        if slot.holds != layer:
            raise StaleSlotError(f"layer {layer} would run on slot {self.slot_of(layer)} holding {slot.holds}")
        self.engine.wait_compute(slot.loaded)
        slot.in_use = True

    def release(self, layer: int) -> None:
        """After `layer`'s kernels are queued: write back, free the slot, prefetch its next occupant."""
        if not self.streams(layer):
            return
        index = self.slot_of(layer)
        slot = self._slots[index]
        done = self.engine.record_compute()
        back = self.write_back(layer, index)
        slot.free = self.engine.copy(back, done, to_device=False) if back else done
        slot.in_use = False
        if self.poison_released and not self.engine.cuda:
            for tensor in self.slot_tensors(index):
                _poison(tensor)
            slot.holds = None
        following = self._index[layer] + self.num_slots
        if following < len(self.order):
            self._prefetch(self.order[following])
        elif self.wraps:  # the slot's first user in the next pass
            self._prefetch(self.order[index])

    def _prefetch(self, layer: int) -> None:
        index = self.slot_of(layer)
        slot = self._slots[index]
        if slot.in_use:
            raise StaleSlotError(f"slot {index} is still in use; layer {layer} cannot be copied into it")
        slot.loaded = self.engine.copy(self.copy_in(layer, index), slot.free, to_device=True)
        slot.holds = layer


def _poison(tensor: torch.Tensor) -> None:
    if tensor.is_floating_point() and tensor.element_size() > 1:
        tensor.fill_(float("nan"))
    else:
        tensor.view(torch.uint8).fill_(0xFF)  # NaN in e4m3, -1 in int8: wrong either way


def run_layers(num_layers: int, rings: Sequence[LayerRing]) -> Iterator[int]:
    """The layer indices of one pass, each bracketed by every ring's wait and release.

    The caller runs layer i's kernels between receiving i and asking for the next."""
    for ring in rings:
        ring.start_pass()
    for layer in range(num_layers):
        for ring in rings:
            ring.wait(layer)
        yield layer
        for ring in rings:
            ring.release(layer)
