"""The causal block sampler and its streaming decode, on the tiny DiT and VAE at 64x64 px.

Checked: cached block-by-block sampling equals a reference that rebuilds each
step cache from the recorded history before every call (across clips and a
wrapped ring); the call conventions of docs/model.md §6.4 (noise, step caches, first
frames, audio slices, sink distances); seeds; causality; streamed decode ==
one-shot decode; nothing accumulates while frames are pulled.
"""

from __future__ import annotations

import random
import time
import weakref
from itertools import islice

import numpy as np
import pytest
import torch

from avatar_batch.render.liveavatar import streaming as streaming_module
from avatar_batch.render.liveavatar.checkpoint.tiny import random_dit
from avatar_batch.render.liveavatar.conditioning import Conditioning
from avatar_batch.render.liveavatar.config import CONFIG_TINY
from avatar_batch.render.liveavatar.dit import BlockInputs
from avatar_batch.render.liveavatar.limits import ClipGeometry
from avatar_batch.render.liveavatar.sampler import (
    SamplerOptions,
    SamplingPlan,
    sample_blocks,
    seeded_noise,
    sink_distances,
    tapped,
)
from avatar_batch.render.liveavatar.schedule import dmd_schedule
from avatar_batch.render.liveavatar.streaming import side_decode_fits, stream_frames, to_uint8_frames
from avatar_batch.render.liveavatar.telemetry import PhaseClock
from avatar_batch.render.liveavatar.vae import load_vae, write_tiny_vae

PX = 64  # latent 8x8, 16 tokens per latent frame: the smallest size FramePack accepts
LAT = PX // 8
AUDIO_DIM = CONFIG_TINY.dit.audio_dim


@pytest.fixture(scope="module")
def dit():
    return random_dit(CONFIG_TINY.dit, seed=0, dtype=torch.float32)


@pytest.fixture(scope="module")
def vae(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vae")
    write_tiny_vae(folder, CONFIG_TINY.vae, seed=3)
    return load_vae(folder, device="cpu", dtype=torch.float32, sizes=CONFIG_TINY.vae)


def make_plan(num_clips: int, frames_per_clip: int = 24, steps: int = 2, seed: int = 420) -> SamplingPlan:
    return SamplingPlan(ClipGeometry(PX, PX, frames_per_clip, num_clips), dmd_schedule(steps), seed)


def make_cond(dit, plan: SamplingPlan, seed: int = 0) -> Conditioning:
    g = torch.Generator().manual_seed(seed)
    context = dit.embed_text(torch.randn(6, 4096, generator=g))
    audio = torch.randn(25, AUDIO_DIM, plan.geometry.num_video_frames, generator=g)
    ref = torch.randn(16, 1, LAT, LAT, generator=g)
    motion = torch.randn(16, 19, LAT, LAT, generator=g)
    return Conditioning(context, audio, ref, motion)


def sample(dit, cond, plan, fixed_distance=None, max_batch=None) -> list[torch.Tensor]:
    distances = sink_distances(plan.seed, fixed_distance)
    return list(sample_blocks(dit, cond, plan, distances, seeded_noise(plan), max_batch=max_batch))


def replayed_reference(dit, cond, plan) -> list[torch.Tensor]:
    """Spec §6.4 written out independently: every denoising call runs on a FRESH
    step cache refilled by replaying, in order, the calls made earlier at the same step."""
    geometry, schedule = plan.geometry, plan.schedule
    cond_cache = dit.new_cond_cache(PX, PX)
    dit.prefill_sink(cond.ref_latent, cond.motion_latents, cond.context, cond_cache)
    rng = random.Random(plan.seed)
    history: list[list[BlockInputs]] = [[] for _ in range(schedule.num_steps)]
    out = []
    for clip in range(geometry.num_clips):
        shape = (16, geometry.latent_frames_per_clip, LAT, LAT)
        noise = torch.randn(shape, generator=torch.Generator().manual_seed(plan.seed + clip))
        for block in range(geometry.blocks_per_clip):
            g = clip * geometry.blocks_per_clip + block
            x = noise[:, 3 * block : 3 * block + 3]
            for step in range(schedule.num_steps):
                call = BlockInputs(
                    x, schedule.timesteps[step], cond.audio[..., 12 * g : 12 * g + 12], 3 * g, rng.randint(4, 30)
                )
                cache = dit.new_step_caches(PX, PX, 1, geometry.latent_frames_per_clip)[0]
                for earlier in history[step]:
                    dit.denoise_block(earlier, cache, cond_cache)
                velocity = dit.denoise_block(call, cache, cond_cache)
                history[step].append(call)
                x = x + (schedule.sigmas[step + 1] - schedule.sigmas[step]) * velocity
            out.append(x)
    return out


def test_cached_sampling_equals_caches_rebuilt_from_history(dit):
    plan = make_plan(num_clips=3)  # 6 blocks; the ring holds 2, so it wraps twice
    assert plan.geometry.total_latent_frames > 2 * plan.geometry.latent_frames_per_clip
    cond = make_cond(dit, plan)
    cached = sample(dit, cond, plan, max_batch=1)  # one call at a time: exactly the same arithmetic
    reference = replayed_reference(dit, cond, plan)
    assert len(cached) == len(reference) == 6
    for index, (ours, ref) in enumerate(zip(cached, reference)):
        assert ours.shape == (16, 3, LAT, LAT)
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6, msg=f"block {index}")


@pytest.mark.parametrize("steps", [2, 3, 4])
def test_batched_wavefront_equals_one_call_at_a_time(dit, steps):
    # 3 clips of 2 blocks: the rings fill, wrap twice, and the wavefront fills and drains.
    plan = make_plan(num_clips=3, steps=steps)
    cond = make_cond(dit, plan)
    plain = sample(dit, cond, plan, max_batch=1)
    recorder = RecordingDiT(dit)
    batched = sample(recorder, cond, plan)
    assert max(len(batch) for batch in recorder.batches) == steps  # full diagonals ran as one call
    for index, (ours, ref) in enumerate(zip(batched, plain)):
        # Only the rounding of larger matrix products differs (fp32 here).
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4, msg=f"block {index}")
    for batch in recorder.batches:
        # One anti-diagonal per batch: block index + step index is the same for every call.
        timesteps = list(plan.schedule.timesteps)
        assert len({b.first_frame // 3 + timesteps.index(b.timestep) for b, _ in batch}) == 1
        assert len({id(cache) for _, cache in batch}) == len(batch)


def test_max_batch_is_validated(dit):
    plan = make_plan(num_clips=1)
    with pytest.raises(ValueError, match="max_batch"):
        sample(dit, make_cond(dit, plan), plan, max_batch=0)


class RecordingDiT:
    """The tiny DiT, with every denoising call's arguments kept."""

    def __init__(self, dit):
        self._dit, self.batches = dit, []

    def __getattr__(self, name):
        return getattr(self._dit, name)

    def denoise_wave(self, batches, cond_cache):
        self.batches.extend(list(zip(blocks, step_caches)) for blocks, step_caches in batches)
        return self._dit.denoise_wave(batches, cond_cache)

    @property
    def calls(self):
        """Every call, in the plain block-by-block order the official loop uses."""
        calls = [call for batch in self.batches for call in batch]
        timesteps = sorted({block.timestep for block, _ in calls}, reverse=True)
        return sorted(calls, key=lambda call: (call[0].first_frame, timesteps.index(call[0].timestep)))


# --- the sink refresh -------------------------------------------------------------------


class RefreshRecorder:
    """A `SinkRefresh` that records clip 0's latents and returns fixed new sink latents."""

    def __init__(self, new_sink: tuple[torch.Tensor, torch.Tensor]):
        self.new_sink, self.received = new_sink, []

    def __call__(self, clip_latents):
        self.received.append(clip_latents)
        return self.new_sink


class PrefillRecorder(RecordingDiT):
    def __init__(self, dit):
        super().__init__(dit)
        self.prefills = []

    def prefill_sink(self, ref_latent, motion_latents, context, cond_cache):
        self.prefills.append((ref_latent, motion_latents, len(self.batches)))
        return self._dit.prefill_sink(ref_latent, motion_latents, context, cond_cache)


def refreshed(dit, cond, plan, refresh, max_batch=None) -> list[torch.Tensor]:
    distances = sink_distances(plan.seed)
    return list(sample_blocks(dit, cond, plan, distances, seeded_noise(plan), max_batch=max_batch, refresh=refresh))


def test_sink_refresh_keeps_clip_0_and_reseeds_the_sink_before_clip_1(dit):
    plan = make_plan(num_clips=3)
    cond = make_cond(dit, plan)
    g = torch.Generator().manual_seed(9)
    new_sink = (torch.randn(16, 1, LAT, LAT, generator=g), torch.randn(16, 19, LAT, LAT, generator=g))
    # One call at a time, so that batching (whose rounding follows the batch size) is no difference.
    plain = sample(dit, cond, plan, max_batch=1)
    refresh, recorder = RefreshRecorder(new_sink), PrefillRecorder(dit)
    ours = refreshed(recorder, cond, plan, refresh, max_batch=1)
    per_clip = plan.geometry.blocks_per_clip
    for index in range(per_clip):  # clip 0 reads the portrait's sink, as without the refresh
        assert torch.equal(ours[index], plain[index]), index
    for index in range(per_clip, len(plain)):  # later clips read the new sink
        assert not torch.allclose(ours[index], plain[index], atol=1e-3), index
    # The refresh saw exactly clip 0's latents, once; the second prefill used its latents
    # after every call of clip 0 and before any call of clip 1.
    assert len(refresh.received) == 1
    assert torch.equal(refresh.received[0], torch.cat(ours[:per_clip], dim=1))
    (first_ref, _, before), (second_ref, second_motion, between) = recorder.prefills
    assert torch.equal(first_ref, cond.ref_latent) and before == 0
    assert second_ref is new_sink[0] and second_motion is new_sink[1]
    calls_before = [block for batch in recorder.batches[:between] for block, _ in batch]
    calls_after = [block for batch in recorder.batches[between:] for block, _ in batch]
    frames_per_clip = plan.geometry.latent_frames_per_clip
    assert len(calls_before) == per_clip * plan.schedule.num_steps and calls_after
    assert all(block.first_frame < frames_per_clip for block in calls_before)
    assert all(block.first_frame >= frames_per_clip for block in calls_after)


def test_sink_refresh_with_the_same_latents_changes_nothing(dit):
    """Draining the wavefront at the clip boundary and prefilling again is exact:
    refreshed with the portrait's own latents, every block equals the plain run."""
    plan = make_plan(num_clips=3)
    cond = make_cond(dit, plan)
    plain = sample(dit, cond, plan, max_batch=1)
    same = refreshed(dit, cond, plan, RefreshRecorder((cond.ref_latent, cond.motion_latents)), max_batch=1)
    for index, (ours, ref) in enumerate(zip(same, plain)):
        assert torch.equal(ours, ref), index


def test_sink_refresh_batched_equals_one_call_at_a_time(dit):
    plan = make_plan(num_clips=3, steps=3)
    cond = make_cond(dit, plan)
    g = torch.Generator().manual_seed(9)
    new_sink = (torch.randn(16, 1, LAT, LAT, generator=g), torch.randn(16, 19, LAT, LAT, generator=g))
    plain = refreshed(dit, cond, plan, RefreshRecorder(new_sink), max_batch=1)
    batched = refreshed(dit, cond, plan, RefreshRecorder(new_sink))
    for index, (ours, ref) in enumerate(zip(batched, plain)):
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4, msg=f"block {index}")


def test_sink_refresh_is_not_called_for_one_clip(dit):
    plan = make_plan(num_clips=1)
    cond = make_cond(dit, plan)
    refresh = RefreshRecorder((cond.ref_latent, cond.motion_latents))
    assert len(refreshed(dit, cond, plan, refresh)) == plan.geometry.blocks_per_clip
    assert refresh.received == []


def test_calls_follow_the_official_conventions(dit):
    plan = make_plan(num_clips=2, frames_per_clip=24, steps=3, seed=7)
    cond = make_cond(dit, plan)
    recorder = RecordingDiT(dit)
    sample(recorder, cond, plan)
    calls = recorder.calls
    assert len(calls) == 2 * 2 * 3
    draws = random.Random(7)
    caches_by_step: dict[int, set[int]] = {0: set(), 1: set(), 2: set()}
    for n, (block, cache) in enumerate(calls):
        clip, g, step = n // 6, n // 3, n % 3
        assert block.first_frame == 3 * g
        assert block.timestep == plan.schedule.timesteps[step]
        assert torch.equal(block.audio, cond.audio[..., 12 * g : 12 * g + 12])
        assert block.sink_distance == draws.randint(4, 30)
        caches_by_step[step].add(id(cache))
        if step == 0:  # the block starts from its slice of the clip's single noise draw
            noise = torch.randn(16, 6, LAT, LAT, generator=torch.Generator().manual_seed(7 + clip))
            b = g % 2
            assert torch.equal(block.latents, noise[:, 3 * b : 3 * b + 3])
    assert all(len(ids) == 1 for ids in caches_by_step.values())  # step k always uses step-cache k
    assert len(set().union(*caches_by_step.values())) == 3


def test_fixed_sink_distance_is_used_for_every_call(dit):
    plan = make_plan(num_clips=1)
    recorder = RecordingDiT(dit)
    sample(recorder, make_cond(dit, plan), plan, fixed_distance=12)
    assert {block.sink_distance for block, _ in recorder.calls} == {12}


def test_sink_distances_are_reproducible_draws_in_range():
    drawn = list(islice(sink_distances(420), 200))
    assert drawn == list(islice(sink_distances(420), 200))
    assert drawn != list(islice(sink_distances(421), 200))
    assert min(drawn) == 4 and max(drawn) == 30
    assert set(islice(sink_distances(420, fixed=9), 20)) == {9}


def test_a_latents_sink_sees_every_block_in_order_and_changes_none():
    blocks = [torch.full((16, 3, 2, 2), float(index)) for index in range(4)]
    seen: list[torch.Tensor] = []
    passed = tapped(iter(blocks), seen.append)
    assert not seen  # lazy: a block is shown when it is pulled
    first = next(passed)
    assert first is blocks[0] and len(seen) == 1
    assert [first, *passed] == blocks and seen == blocks


def test_options_are_validated():
    with pytest.raises(ValueError, match="sink_distance"):
        SamplerOptions(sink_distance=3)
    with pytest.raises(ValueError, match="pad_mode"):
        SamplerOptions(pad_mode="stretch")
    with pytest.raises(ValueError, match="drop_first_frames"):
        SamplerOptions(drop_first_frames=-1)
    assert SamplerOptions().tag() == ""
    assert SamplerOptions(drop_first_frames=3).tag() != ""


def test_seed_reproduces_and_changes_the_latents(dit):
    plan = make_plan(num_clips=1)
    cond = make_cond(dit, plan)
    first, again = sample(dit, cond, plan), sample(dit, cond, plan)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    other = sample(dit, cond, make_plan(num_clips=1, seed=421))
    assert not torch.allclose(first[0], other[0])


def test_noise_is_one_cpu_fp32_draw_per_clip():
    plan = make_plan(num_clips=2, frames_per_clip=48)
    noise = seeded_noise(plan)
    clip1 = noise(1)
    assert clip1.dtype == torch.float32 and clip1.shape == (16, 12, LAT, LAT)
    assert torch.equal(clip1, torch.randn(16, 12, LAT, LAT, generator=torch.Generator().manual_seed(421)))


def test_later_clips_never_change_earlier_blocks(dit):
    """Causality at sampler level: what makes stopping at the speech's end exact."""
    long_plan = make_plan(num_clips=3)
    cond = make_cond(dit, long_plan)
    short_plan = make_plan(num_clips=1)
    short_cond = Conditioning(cond.context, cond.audio[..., :24], cond.ref_latent, cond.motion_latents)
    short = sample(dit, short_cond, short_plan, max_batch=1)
    long = sample(dit, cond, long_plan, max_batch=1)
    assert all(torch.equal(a, b) for a, b in zip(short, long[:2]))
    # Batched, a block's calls may share a batch with later blocks: equal up to rounding.
    batched = sample(dit, cond, long_plan)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-4) for a, b in zip(short, batched[:2]))


# --- streaming decode -----------------------------------------------------------------------


def test_streamed_decode_equals_one_shot_decode(vae):
    g = torch.Generator().manual_seed(5)
    prime = torch.randn(16, 3, LAT, LAT, generator=g)
    blocks = [torch.randn(16, 3, LAT, LAT, generator=g) for _ in range(3)]
    frames = list(stream_frames(blocks, vae.stream_decoder(), prime, PhaseClock()))
    assert len(frames) == 36  # 12 per block, none dropped
    assert all(f.shape == (PX, PX, 3) and f.dtype == np.uint8 for f in frames)
    whole = vae.decode(torch.cat([prime, *blocks], dim=1)[None])  # (1, 3, 1 + 4*11, H, W)
    primed_frames = 1 + 4 * (prime.shape[1] - 1)
    expected = to_uint8_frames(whole[:, :, primed_frames:])
    assert expected.shape[0] == 36
    # Same decode in another call order: float round-off may flip a truncation by one level.
    assert np.abs(np.stack(frames).astype(int) - expected.astype(int)).max() <= 1
    dropped = list(stream_frames(blocks, vae.stream_decoder(), prime, PhaseClock(), drop_first_frames=3))
    assert len(dropped) == 33
    assert all(np.array_equal(a, b) for a, b in zip(dropped, frames[3:]))
    # Off CUDA, asking for a side-stream decode falls back to the same frames.
    assert not side_decode_fits(torch.device("cpu"), PX, PX)
    overlapped = list(stream_frames(blocks, vae.stream_decoder(), prime, PhaseClock(), overlap=True))
    assert all(np.array_equal(a, b) for a, b in zip(overlapped, frames)) and len(overlapped) == 36


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_side_stream_decode_gives_the_same_frames_on_cuda(tmp_path):
    write_tiny_vae(tmp_path, CONFIG_TINY.vae, seed=3)
    vae = load_vae(tmp_path, device="cuda", dtype=torch.bfloat16, sizes=CONFIG_TINY.vae)
    g = torch.Generator().manual_seed(6)
    prime = torch.randn(16, 3, LAT, LAT, generator=g).cuda()
    blocks = [torch.randn(16, 3, LAT, LAT, generator=g).cuda() for _ in range(4)]
    clock = PhaseClock()
    plain = list(stream_frames(iter(blocks), vae.stream_decoder(), prime, clock))
    assert side_decode_fits(torch.device("cuda"), PX, PX)
    overlapped_clock = PhaseClock()
    began_s = time.perf_counter()
    overlapped = list(stream_frames(iter(blocks), vae.stream_decoder(), prime, overlapped_clock, overlap=True))
    loop_s = time.perf_counter() - began_s
    assert len(plain) == len(overlapped) == 48
    assert all(np.array_equal(a, b) for a, b in zip(plain, overlapped))
    # Queueing the side decode is charged too: the phases cover the loop, not a part of it.
    assert overlapped_clock.get("sampling") + overlapped_clock.get("decode") >= 0.9 * loop_s


def test_nothing_accumulates_while_frames_are_pulled(dit, vae, monkeypatch):
    """Latents and decoded blocks must die as soon as their frames are out: at most
    the current block of each is alive whatever the video's length."""
    alive: list[weakref.ref] = []
    real_to_uint8 = streaming_module.to_uint8_frames

    def recording_to_uint8(video):
        frames = real_to_uint8(video)
        alive.extend([weakref.ref(video), weakref.ref(frames)])
        return frames

    monkeypatch.setattr(streaming_module, "to_uint8_frames", recording_to_uint8)
    plan = make_plan(num_clips=3)
    cond = make_cond(dit, plan)
    blocks = sample_blocks(dit, cond, plan, sink_distances(plan.seed), seeded_noise(plan))
    latents_alive: list[weakref.ref] = []

    def recorded_blocks():
        for latents in blocks:
            latents_alive.append(weakref.ref(latents))
            yield latents

    most_alive = 0
    for frame in stream_frames(recorded_blocks(), vae.stream_decoder(), cond.motion_latents[:, -2:], PhaseClock()):
        del frame  # reference counting frees at once; a leak or a cycle would stay counted
        most_alive = max(most_alive, sum(r() is not None for r in alive + latents_alive))
    assert len(latents_alive) == 6 and len(alive) == 12
    assert most_alive <= 3  # the current block's latents, decoded video and uint8 frames
