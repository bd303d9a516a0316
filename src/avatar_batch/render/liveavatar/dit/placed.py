"""Putting a DiT where a placement says: resident or streamed blocks, weight and cache formats.

`DiTPlacer` is handed to the loader (checkpoint/loader.py), which calls it
as the shards are read: the parts outside the blocks are quantised once
loaded (`finish_trunk`), then each block is loaded on the compute device,
merged with its LoRA and `finish_block`ed: a resident block is quantised in
place; a streamed one is quantised and `adopt`ed, packed into its pinned
host buffer and pointed at its ring slot. So the host never holds a second
copy of the weights, and the device never holds more than one block in the
run dtype beyond its stored weights (a 14B DiT stored in int4 fits a 24 GiB
card; loaded whole in bf16 first, it would not). `attach` hands the ring and
the cache policy to the model.

`place_loaded` does the same to a model already in memory (tests, benchmarks
with random weights). Nothing here reads files or knows the planner.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from avatar_batch.render.liveavatar.dit.cache import CachePolicy
from avatar_batch.render.liveavatar.dit.model import CausalS2VDiT
from avatar_batch.render.liveavatar.dit.quant import check_formats, quantise_linears
from avatar_batch.render.liveavatar.dit.rings import CopyEngine
from avatar_batch.render.liveavatar.dit.weight_stream import SlotLayout, WeightRing, streamed_layer_indices

BLOCKS_PREFIX = "blocks."


def block_of_key(key: str) -> int | None:
    """'blocks.7.ffn.0.weight' -> 7; None for keys outside the blocks."""
    index = key[len(BLOCKS_PREFIX) :].split(".", 1)[0] if key.startswith(BLOCKS_PREFIX) else ""
    return int(index) if index.isdigit() else None


@dataclass
class DiTPlacer:
    num_layers: int
    resident_layers: int
    num_slots: int
    weight_format: str
    compute: str
    engine: CopyEngine
    cache_policy: CachePolicy = field(default_factory=CachePolicy)
    ring: WeightRing | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        check_formats(self.weight_format, self.compute)
        self.streamed = streamed_layer_indices(self.num_layers, self.resident_layers)

    def finish_trunk(self, model: nn.Module) -> None:
        """Quantise what lies outside the blocks (the blocks are finished one by one)."""
        quantise_linears(model, self.weight_format, self.compute, skip=_in_a_block)

    def finish_block(self, layer: int, block: nn.Module) -> None:
        """`block` holds its final weights in the run dtype (LoRA merged): store it as placed."""
        if layer in self.streamed:
            self.adopt(layer, block)
        else:
            quantise_linears(block, self.weight_format, self.compute)

    def adopt(self, layer: int, block: nn.Module) -> None:
        """`block` holds its final bf16 weights (LoRA merged): quantise, pack to the host, bind to its slot."""
        quantise_linears(block, self.weight_format, self.compute)
        if self.ring is None:
            self.ring = WeightRing(self.engine, self.streamed, SlotLayout.of(block), self.num_slots)
        self.ring.adopt(layer, block)

    def attach(self, model: CausalS2VDiT) -> CausalS2VDiT:
        if self.streamed and (self.ring is None or sorted(self.ring.host) != self.streamed):
            raise RuntimeError(f"streamed blocks {self.streamed} were not all adopted before attach")
        model.weight_ring = self.ring
        model.cache_policy = self.cache_policy
        return model


def _in_a_block(name: str) -> bool:
    return block_of_key(name + ".") is not None


def place_loaded(model: CausalS2VDiT, placer: DiTPlacer) -> CausalS2VDiT:
    """Apply `placer` to a model whose weights are all loaded (resident) already."""
    placer.finish_trunk(model)
    for layer, block in enumerate(model.blocks):
        placer.finish_block(layer, block)
    return placer.attach(model)
