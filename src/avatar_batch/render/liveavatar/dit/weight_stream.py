"""Block-streamed DiT weights: blocks past the resident ones live in pinned host memory.

A streamed block's parameters and buffers are packed into one flat byte
buffer (`SlotLayout`: each tensor at a 256-byte aligned offset; the 40 blocks
are identical, so one layout serves all of them). The host keeps one such
buffer per streamed block, page-locked, filled once at load time (after the
LoRA merge and any quantisation) and never copied again on the host. The
compute device keeps `num_slots` buffers of the same size, and the block's
tensors become permanent views into its slot: the module keeps its
parameters, torch.compile sees the same tensor shapes and strides every call,
and nothing about a block's code knows it is streamed.

The ring wraps: releasing a block's slot queues the next block that uses the
slot, the first blocks of the next DiT call included, so the copies of the
next call's first streamed blocks overlap the end of the current one.

Why our own ring and not diffusers' `apply_group_offloading(offload_type=
"block_level", use_stream=True, record_stream=True)`: measured on an H200 at
704x384, 4 steps, every block streamed, one wavefront call of 4 blocks
(benchmarks/results/NVIDIA-H200-20261202-stream-compare.json): resident 892
ms, diffusers 899 ms (1287 ms with `low_cpu_mem_usage`), this ring 904 ms
with 3 slots and 951 ms with 2. Equal speed at equal buffering (diffusers
onloads the next block when the current one starts, i.e. three blocks in
memory), but diffusers streams every block of a ModuleList or none, allocates
each onload anew, knows nothing of our KV caches, and its fp8 storage
(`apply_layerwise_casting`) has no scales; this ring keeps any number of
blocks resident, streams caches through the same mechanism, moves 8-bit
blocks with per-channel scales, and keeps every address fixed for
torch.compile (0 cache-limit hits in that run). Not measured, and not
adopted: accelerate's offload hooks, which move weights in each module's
pre-forward on the compute stream (no copy overlaps compute); torchao's
weight-only configs, whose tensor subclasses would have to be unwrapped to be
packed into a slot, and whose releases are pinned to torch versions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from avatar_batch.render.liveavatar.dit.rings import CopyEngine, LayerRing
from avatar_batch.render.liveavatar.host_memory import carve

ALIGN_BYTES = 256  # every tensor starts on a 256-byte boundary (vectorised kernels want >= 16)


@dataclass(frozen=True)
class TensorSpot:
    """Where one tensor of a block sits in its packed buffer."""

    module: str  # path inside the block ("" for the block itself)
    name: str
    is_parameter: bool
    dtype: torch.dtype
    shape: tuple[int, ...]
    offset_bytes: int
    nbytes: int


@dataclass(frozen=True)
class SlotLayout:
    spots: tuple[TensorSpot, ...]
    nbytes: int

    @classmethod
    def of(cls, block: nn.Module) -> SlotLayout:
        spots, offset = [], 0
        for module_name, module in block.named_modules():
            owned = [(n, t, True) for n, t in module._parameters.items() if t is not None]
            owned += [(n, t, False) for n, t in module._buffers.items() if t is not None]
            for name, tensor, is_parameter in owned:
                nbytes = tensor.numel() * tensor.element_size()
                spots.append(
                    TensorSpot(module_name, name, is_parameter, tensor.dtype, tuple(tensor.shape), offset, nbytes)
                )
                offset += -(-nbytes // ALIGN_BYTES) * ALIGN_BYTES
        return cls(tuple(spots), offset)


def spot_view(buffer: torch.Tensor, spot: TensorSpot) -> torch.Tensor:
    """The typed tensor of `spot` inside a flat uint8 `buffer` (a view: no copy)."""
    raw = buffer[spot.offset_bytes : spot.offset_bytes + spot.nbytes]
    return raw.view(spot.dtype).view(spot.shape)


def _tensor_at(block: nn.Module, spot: TensorSpot) -> torch.Tensor:
    owner = block.get_submodule(spot.module) if spot.module else block
    table = owner._parameters if spot.is_parameter else owner._buffers
    tensor = table[spot.name]
    assert tensor is not None
    return tensor


def _rebind(block: nn.Module, spot: TensorSpot, tensor: torch.Tensor) -> None:
    owner = block.get_submodule(spot.module) if spot.module else block
    if spot.is_parameter:
        owner._parameters[spot.name] = nn.Parameter(tensor, requires_grad=False)
    else:
        owner._buffers[spot.name] = tensor


class WeightRing(LayerRing):
    """Host copies of the streamed blocks and the device slots they run in."""

    def __init__(self, engine: CopyEngine, streamed_layers: list[int], layout: SlotLayout, num_slots: int):
        super().__init__(engine, list(streamed_layers), num_slots, wraps=True)
        self.layout = layout
        self.slots = [
            engine.shared_with_side_streams(torch.empty(layout.nbytes, dtype=torch.uint8, device=engine.device))
            for _ in range(self.num_slots)
        ]
        self.host: dict[int, torch.Tensor] = {}
        # Carved from power-of-two slabs up front (host_memory.py): one pinned
        # allocation per layer would round each up to a power of two.
        self._unfilled = dict(zip(streamed_layers, carve([layout.nbytes] * len(streamed_layers), engine.pin)))

    @property
    def host_bytes(self) -> int:
        return sum(buffer.numel() for buffer in self.host.values())

    @property
    def device_bytes(self) -> int:
        return sum(buffer.numel() for buffer in self.slots)

    def adopt(self, layer: int, block: nn.Module) -> None:
        """Pack `block` (already merged and quantised, on any device) into its host buffer
        and point its tensors into its slot; the block's own storage is dropped."""
        if SlotLayout.of(block) != self.layout:
            raise ValueError(f"block {layer} does not have the layout of the other streamed blocks")
        host = self._unfilled.pop(layer)
        slot = self.slots[self.slot_of(layer)]
        for spot in self.layout.spots:
            spot_view(host, spot).copy_(_tensor_at(block, spot))
            _rebind(block, spot, spot_view(slot, spot))
        self.host[layer] = host

    def copy_in(self, layer: int, slot: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(self.host[layer], self.slots[slot])]

    def slot_tensors(self, slot: int) -> list[torch.Tensor]:
        return [self.slots[slot]]


def streamed_layer_indices(num_layers: int, resident: int) -> list[int]:
    """Which blocks stream when `resident` of `num_layers` stay: spread evenly, so the
    copy of each streamed block overlaps the compute of the resident blocks before it
    (a run of streamed blocks at the end would leave the copy engine idle meanwhile)."""
    if not 0 <= resident <= num_layers:
        raise ValueError(f"resident layers must be 0..{num_layers}, got {resident}")
    streamed = num_layers - resident
    return sorted({num_layers - 1 - (j * num_layers) // streamed for j in range(streamed)})
