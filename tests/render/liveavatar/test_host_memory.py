"""Host buffers carved from power-of-two slabs: no overlap, little waste."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from avatar_batch.render.liveavatar.host_memory import (
    ALIGNMENT_BYTES,
    carve,
    carve_like,
    slab_plan,
    slab_waste_bytes,
)

LAYER_BYTES = 844_000_000  # one streamed 14B DiT block in bf16, about


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


@given(st.lists(st.integers(min_value=0, max_value=5_000), min_size=1, max_size=40))
def test_every_slab_is_a_power_of_two_and_holds_its_buffers_in_order_without_overlap(sizes):
    plan = slab_plan(sizes)
    assert sum(len(offsets) for _, offsets in plan) == len(sizes)
    index = 0
    for slab, offsets in plan:
        assert _power_of_two(slab) and offsets and offsets[0] == 0
        for offset in offsets:
            assert offset % ALIGNMENT_BYTES == 0 and offset + sizes[index] <= slab
            index += 1
        ends = [o + sizes[i] for o, i in zip(offsets, range(index - len(offsets), index))]
        assert all(end <= nxt for end, nxt in zip(ends, offsets[1:]))


def test_streamed_layers_waste_a_fraction_of_what_one_pinned_buffer_each_would():
    sizes = [LAYER_BYTES] * 38
    per_buffer_rounding = 38 * (2**30 - LAYER_BYTES)  # what torch's pinned allocator would add
    assert slab_waste_bytes(sizes) < per_buffer_rounding / 4
    assert slab_waste_bytes(sizes) < 2 * 2**30


def test_carved_buffers_have_their_sizes_and_do_not_share_bytes():
    sizes = [3000, 10, 0, 4096, 777]
    buffers = carve(sizes, pin=False)
    assert [b.numel() for b in buffers] == sizes and all(b.dtype == torch.uint8 for b in buffers)
    for value, buffer in enumerate(buffers):
        buffer.fill_(value)
    assert all(bool((buffer == value).all()) for value, buffer in enumerate(buffers))


def test_carve_like_gives_typed_tensors_of_the_shape():
    tensors = carve_like((4, 3, 5), torch.bfloat16, 6, pin=False)
    assert len(tensors) == 6 and all(t.shape == (4, 3, 5) and t.dtype == torch.bfloat16 for t in tensors)
    for i, t in enumerate(tensors):
        t.fill_(i)
    assert [float(t[0, 0, 0]) for t in tensors] == [float(i) for i in range(6)]
