"""Placed DiTs on the CPU: streamed blocks and caches give the resident model's latents.

On the CPU the "host" and the "device" are both the CPU, but the same slots,
ring order, prefetch, write-back and staleness checks run (with synchronous
copies instead of CUDA streams). Also: fp8 KV caches and 8-bit weight storage
within stated error bounds, the placed loader, and the ring's bookkeeping.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from avatar_batch.render.liveavatar.checkpoint import load_dit
from avatar_batch.render.liveavatar.checkpoint.tiny import random_dit, write_tiny_checkpoint
from avatar_batch.render.liveavatar.conditioning import Conditioning
from avatar_batch.render.liveavatar.config import CONFIG_TINY
from avatar_batch.render.liveavatar.dit.cache import CachePolicy, spans_without
from avatar_batch.render.liveavatar.dit.placed import DiTPlacer, place_loaded
from avatar_batch.render.liveavatar.dit.quant import Int4Linear, QuantisedLinear
from avatar_batch.render.liveavatar.dit.rings import CopyEngine, StaleSlotError
from avatar_batch.render.liveavatar.dit.weight_stream import SlotLayout, streamed_layer_indices
from avatar_batch.render.liveavatar.limits import ClipGeometry
from avatar_batch.render.liveavatar.sampler import SamplingPlan, sample_blocks, seeded_noise, sink_distances
from avatar_batch.render.liveavatar.schedule import dmd_schedule

PX = 64
LAYERS = 5  # 4 streamed blocks through 2 or 3 slots: every slot is reused within a pass
CONFIG = replace(CONFIG_TINY.dit, num_layers=LAYERS, audio_inject_layers=(0, 3))
CPU = torch.device("cpu")
# Bounds on the relative L2 distance of final latents against full precision (tiny fp32 model,
# 3 clips of 2 blocks, 3 steps); measured 0.0012, 0.0039, 0.015 and 0.064; a bound ~4x the measurement.
FP8_KV_BOUND = 0.005  # e4m3 keys/values, one scale per token and head
INT8_WEIGHT_BOUND = 0.015  # int8 weights, one scale per output channel
FP8_WEIGHT_BOUND = 0.06  # e4m3 weights, one scale per output channel
INT4_WEIGHT_BOUND = 0.25  # int4 weights, an offset and a step per group of input columns
INT8_WEIGHT_BOUND_BF16 = 0.02  # the same in bf16 on CUDA, which adds its own rounding (held on an H200)


def fresh_dit():
    return random_dit(CONFIG, seed=0, dtype=torch.float32)


def placed(
    resident: int = 0,
    slots: int = 2,
    weight_format: str = "bf16",
    kv_format: str = "bf16",
    steps_resident: int | None = None,
    cond_stream: bool = False,
    poison: bool = False,
):
    engine = CopyEngine(CPU)
    policy = CachePolicy(kv_format, steps_resident, cond_stream, slots, engine)
    placer = DiTPlacer(LAYERS, resident, slots, weight_format, "fp32", engine, policy)
    dit = place_loaded(fresh_dit(), placer)
    if dit.weight_ring is not None:
        dit.weight_ring.poison_released = poison
    return dit, engine


def make_plan(steps: int = 3, clips: int = 3) -> SamplingPlan:
    return SamplingPlan(ClipGeometry(PX, PX, 24, clips), dmd_schedule(steps), seed=420)


def make_cond(dit, plan: SamplingPlan) -> Conditioning:
    g = torch.Generator().manual_seed(0)
    context = dit.embed_text(torch.randn(6, 4096, generator=g))
    audio = torch.randn(25, CONFIG.audio_dim, plan.geometry.num_video_frames, generator=g)
    return Conditioning(context, audio, torch.randn(16, 1, 8, 8, generator=g), torch.randn(16, 19, 8, 8, generator=g))


def latents(dit, plan: SamplingPlan, max_batch: int | None = None, poison_caches: bool = False) -> torch.Tensor:
    blocks = sample_blocks(dit, make_cond(dit, plan), plan, sink_distances(420), seeded_noise(plan), max_batch)
    if poison_caches:  # every cache ring poisons the slots it releases
        blocks = _poisoning(dit, blocks)
    return torch.stack(list(blocks))


def _poisoning(dit, blocks):
    original = dit.new_step_caches, dit.new_cond_cache

    def steps(*args, **kwargs):
        caches = original[0](*args, **kwargs)
        for cache in caches:
            if cache.ring is not None:
                cache.ring.poison_released = True
        return caches

    def cond(*args, **kwargs):
        cache = original[1](*args, **kwargs)
        if cache.ring is not None:
            cache.ring.poison_released = True
        return cache

    dit.new_step_caches, dit.new_cond_cache = steps, cond
    try:
        yield from blocks
    finally:
        dit.new_step_caches, dit.new_cond_cache = original


def relative_l2(got: torch.Tensor, ref: torch.Tensor) -> float:
    return float((got - ref).norm() / ref.norm())


@pytest.fixture(scope="module")
def resident_latents() -> dict[int | None, torch.Tensor]:
    dit, plan = fresh_dit(), make_plan()
    return {None: latents(dit, plan), 1: latents(dit, plan, max_batch=1)}


@pytest.mark.parametrize(
    ("resident", "slots"),
    [(0, 1), (0, 2), (2, 2), (0, 3), (4, 2), (5, 2)],
)
def test_streamed_blocks_give_the_resident_latents(resident_latents, resident, slots):
    dit, engine = placed(resident=resident, slots=slots, poison=True)
    got = latents(dit, make_plan())
    torch.testing.assert_close(got, resident_latents[None], rtol=0, atol=0)
    if resident < LAYERS:
        assert engine.counters.host_to_device > 0


@pytest.mark.parametrize(("steps_resident", "cond_stream"), [(0, True), (1, False), (2, True), (None, True)])
def test_streamed_caches_give_the_resident_latents(resident_latents, steps_resident, cond_stream):
    dit, engine = placed(resident=LAYERS, steps_resident=steps_resident, cond_stream=cond_stream)
    got = latents(dit, make_plan(), poison_caches=True)
    torch.testing.assert_close(got, resident_latents[None], rtol=0, atol=0)
    assert engine.counters.device_to_host > 0


def test_everything_streamed_one_call_at_a_time(resident_latents):
    dit, _ = placed(resident=0, slots=2, steps_resident=0, cond_stream=True, poison=True)
    got = latents(dit, make_plan(), max_batch=1, poison_caches=True)
    torch.testing.assert_close(got, resident_latents[1], rtol=0, atol=0)


def test_a_stale_slot_is_refused():
    dit, _ = placed(resident=0, slots=2)
    ring = dit.weight_ring
    ring.start_pass()
    ring._slots[ring.slot_of(ring.order[0])].holds = ring.order[1]  # the slot claims another layer
    with pytest.raises(StaleSlotError, match=f"layer {ring.order[0]}"):
        ring.wait(ring.order[0])


def test_each_wave_copies_each_streamed_block_once():
    dit, engine = placed(resident=1, slots=2)
    layout = dit.weight_ring.layout
    plan = make_plan(steps=2, clips=1)  # 2 blocks x 2 steps: 3 waves
    latents(dit, plan)
    # The prefill and one pass per wave: the middle wave's two calls read unequal windows, so
    # they are two batches, but both run layer by layer in the same pass.
    passes = 1 + 3
    # The ring wraps: the first slots of the next pass are filled at the end of the last one.
    assert engine.counters.host_to_device == layout.nbytes * (LAYERS - 1) * passes + layout.nbytes * 2


def test_a_wave_of_unequal_windows_is_one_pass_with_the_batches_own_numbers():
    # 3 clips of 4 steps: 15 waves, which the filling rings split into 24 batches.
    plan = make_plan(steps=4, clips=3)
    streamed, _ = placed(resident=1, steps_resident=1, cond_stream=True, poison=True)
    passes = []
    start_pass = streamed.weight_ring.start_pass
    streamed.weight_ring.start_pass = lambda: (passes.append(1), start_pass())[1]
    batch_by_batch, _ = placed(resident=LAYERS)
    one_pass = batch_by_batch.denoise_wave  # each batch in a pass of its own, as before waves shared one
    batch_by_batch.denoise_wave = lambda batches, cond: [one_pass([batch], cond)[0] for batch in batches]
    torch.testing.assert_close(latents(streamed, plan), latents(batch_by_batch, plan), rtol=0, atol=0)
    g = plan.geometry
    assert len(passes) == 1 + g.num_clips * g.blocks_per_clip + 4 - 1  # the prefill, then one per wave


def test_fp8_kv_cache_error_is_bounded(resident_latents):
    dit, _ = placed(resident=LAYERS, kv_format="fp8")
    error = relative_l2(latents(dit, make_plan()), resident_latents[None])
    assert 0 < error < FP8_KV_BOUND
    streamed, _ = placed(resident=LAYERS, kv_format="fp8", steps_resident=1, cond_stream=True)
    torch.testing.assert_close(latents(streamed, make_plan()), latents(dit, make_plan()), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("weight_format", "bound", "bytes_share"),
    [("int8", INT8_WEIGHT_BOUND, 0.35), ("fp8", FP8_WEIGHT_BOUND, 0.35), ("int4", INT4_WEIGHT_BOUND, 0.2)],
)
def test_low_bit_weight_storage_error_is_bounded(resident_latents, weight_format, bound, bytes_share):
    dit, _ = placed(resident=LAYERS, weight_format=weight_format)
    assert any(isinstance(m, (QuantisedLinear, Int4Linear)) for m in dit.blocks[0].modules())
    error = relative_l2(latents(dit, make_plan()), resident_latents[None])
    assert 0 < error < bound
    streamed, _ = placed(resident=1, weight_format=weight_format, poison=True)
    torch.testing.assert_close(latents(streamed, make_plan()), latents(dit, make_plan()), rtol=0, atol=0)
    # A streamed 8-bit block moves about half the bytes of a 16-bit one (fp32 here: a quarter), int4 a quarter.
    assert streamed.weight_ring.layout.nbytes < bytes_share * SlotLayout.of(fresh_dit().blocks[0]).nbytes


def test_fp8_compute_blocks_stream_with_their_scales():
    # The scaled_mm path's per-tensor scales (0-d buffers) travel in the slot with the weights.
    def fp8(resident: int):
        placer = DiTPlacer(LAYERS, resident, 2, "fp8", "fp8", CopyEngine(CPU), CachePolicy())
        return place_loaded(fresh_dit(), placer)

    plan = make_plan(clips=1)
    streamed = fp8(1)
    streamed.weight_ring.poison_released = True
    assert any(s.shape == () for s in streamed.weight_ring.layout.spots)
    torch.testing.assert_close(latents(streamed, plan), latents(fp8(LAYERS), plan), rtol=0, atol=0)


def test_placed_loader_streams_blocks_straight_from_the_shards(tmp_path):
    write_tiny_checkpoint(tmp_path, replace(CONFIG_TINY, dit=CONFIG), encoders=False)
    resident = load_dit(tmp_path, device="cpu", dtype=torch.float32)
    engine = CopyEngine(CPU)
    placer = DiTPlacer(LAYERS, 2, 2, "bf16", "fp32", engine, CachePolicy())
    streamed = load_dit(tmp_path, device="cpu", dtype=torch.float32, placer=placer)
    ring = streamed.weight_ring
    assert sorted(ring.host) == streamed_layer_indices(LAYERS, 2)
    assert ring.host_bytes == ring.layout.nbytes * (LAYERS - 2)
    plan = make_plan(clips=2)
    torch.testing.assert_close(latents(streamed, plan), latents(resident, plan), rtol=0, atol=0)


@pytest.mark.parametrize("weight_format", ["int8", "fp8", "int4"])
def test_placed_loader_merges_the_lora_into_low_bit_streamed_blocks(tmp_path, weight_format):
    # Resident linears are quantised before the streamed blocks load: each streamed
    # block's LoRA must still merge (its targets are the model's, not what is left as Linear).
    write_tiny_checkpoint(tmp_path, replace(CONFIG_TINY, dit=CONFIG), encoders=False)
    whole = place_loaded(
        load_dit(tmp_path, device="cpu", dtype=torch.float32),
        DiTPlacer(LAYERS, LAYERS, 2, weight_format, "bf16", CopyEngine(CPU), CachePolicy()),
    )
    placer = DiTPlacer(LAYERS, 2, 2, weight_format, "bf16", CopyEngine(CPU), CachePolicy())
    streamed = load_dit(tmp_path, device="cpu", dtype=torch.float32, placer=placer)
    assert sorted(streamed.weight_ring.host) == streamed_layer_indices(LAYERS, 2)
    plan = make_plan(clips=1)
    torch.testing.assert_close(latents(streamed, plan), latents(whole, plan), rtol=0, atol=0)


def test_streamed_blocks_are_spread_between_resident_ones():
    assert streamed_layer_indices(40, 40) == []
    assert streamed_layer_indices(40, 0) == list(range(40))
    twenty = streamed_layer_indices(40, 20)
    assert len(twenty) == 20 and max(b - a for a, b in zip(twenty, twenty[1:])) == 2
    with pytest.raises(ValueError, match="0..40"):
        streamed_layer_indices(40, 41)


def test_a_call_copies_its_window_except_what_it_writes():
    assert spans_without(48, (16, 32)) == [(0, 16), (32, 48)]  # full ring: everything but the new block
    assert spans_without(32, (16, 32)) == [(0, 16)]  # filling: only the blocks before
    assert spans_without(16, (0, 16)) == []  # the first block reads only itself


# --- CUDA: side streams, events, pinned memory -------------------------------------------

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def cuda_placed(resident: int, slots: int, steps_resident: int | None, cond_stream: bool, weight_format="bf16"):
    cuda = torch.device("cuda")
    engine = CopyEngine(cuda)
    policy = CachePolicy("bf16", steps_resident, cond_stream, slots, engine)
    placer = DiTPlacer(LAYERS, resident, slots, weight_format, "bf16", engine, policy)
    dit = random_dit(CONFIG, seed=0, dtype=torch.bfloat16).to(cuda)
    return place_loaded(dit, placer), engine


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize(("resident", "slots", "steps_resident", "cond_stream"), [(0, 2, 0, True), (2, 3, 1, False)])
def test_streamed_equals_resident_on_cuda(resident, slots, steps_resident, cond_stream):
    plan = make_plan()
    reference = latents(cuda_placed(LAYERS, 2, None, False)[0], plan)
    dit, engine = cuda_placed(resident, slots, steps_resident, cond_stream)
    assert all(buffer.is_pinned() for buffer in dit.weight_ring.host.values())
    got = latents(dit, plan)
    torch.testing.assert_close(got, reference, rtol=0, atol=0)
    assert engine.counters.host_to_device > 0 and engine.counters.device_to_host > 0


@pytest.mark.gpu
@needs_cuda
def test_compiled_streamed_blocks_equal_resident_without_recompiling():
    from avatar_batch.render.liveavatar.dit.compiled import compile_blocks, compile_stats

    plan = make_plan()
    reference = latents(compile_blocks(cuda_placed(LAYERS, 2, None, False)[0]), plan)
    dit = compile_blocks(cuda_placed(1, 2, 1, True, weight_format="int8")[0])
    latents(dit, plan)
    graphs = compile_stats()["unique_graphs"]
    got = latents(dit, plan)  # a second video: every graph is reused
    assert compile_stats()["unique_graphs"] == graphs and compile_stats()["cache_limit_hits"] == 0
    assert relative_l2(got, reference) < INT8_WEIGHT_BOUND_BF16
