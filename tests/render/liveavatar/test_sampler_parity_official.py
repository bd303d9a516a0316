"""Our whole sampling loop against the official one, on its recorded run (tests/fixtures/official).

The fixture's tiny DiT is loaded (fp32, its own config.json), the official
inputs go in (reference and motion latents, text context, per-frame audio),
our own noise source (CPU generator seeded 420 + clip, which the fixture
used too) and sink-distance source (seeded `random.Random`, here 1234 as in
the recording) run unchanged, and both clips' final latents must match the
official ones. This covers the loop itself - prefill, step caches across the
ring wrap, Euler updates, slicing - on top of the per-call DiT parity tests.
"""

from __future__ import annotations

from itertools import islice

import pytest
import torch

from avatar_batch.render.liveavatar.conditioning import Conditioning
from avatar_batch.render.liveavatar.limits import ClipGeometry
from avatar_batch.render.liveavatar.sampler import SamplingPlan, sample_blocks, seeded_noise, sink_distances
from avatar_batch.render.liveavatar.schedule import dmd_schedule

RELATIVE_TOLERANCE = 1e-4
# One call at a time repeats the official loop's arithmetic: equal on the CPU that wrote the
# fixture, and within float32 rounding of another CPU's kernels (1.1e-5 on an AMD EPYC).
EXACT_LOOP_TOLERANCE = 1e-5
SINK_SEED = 1234  # the recording's sink-distance RNG seed (README: "Sink-distance sequence")

from tests.render.liveavatar.conftest import needs_official_fixtures  # noqa: E402

pytestmark = needs_official_fixtures


@pytest.fixture(scope="module")
def plan(recorded) -> SamplingPlan:
    meta, _ = recorded
    g, seed = meta["geometry"], meta["seeds"]["base_seed"]
    geometry = ClipGeometry(g["height_px"], g["width_px"], g["infer_frames"], g["num_clips"])
    return SamplingPlan(geometry, dmd_schedule(g["steps"]), seed)


def test_our_random_sources_reproduce_the_recorded_ones(recorded, plan):
    meta, tensors = recorded
    draws = meta["sink_distance_draws"]
    assert list(islice(sink_distances(SINK_SEED), len(draws))) == draws
    noise = seeded_noise(plan)
    for clip in range(plan.geometry.num_clips):
        recorded_noise = torch.cat(
            [tensors[f"call.{(4 * clip + block) * 4:02d}.x_in"] for block in range(4)], dim=1
        )  # step-0 inputs of the clip's 4 blocks
        assert torch.equal(noise(clip), recorded_noise)


@pytest.mark.parametrize("max_batch", [1, None], ids=["one-call-at-a-time", "batched-wavefront"])
def test_final_latents_match_the_official_loop(official_model, recorded, plan, max_batch):
    _, tensors = recorded
    cond = Conditioning(
        context=official_model.embed_text(tensors["context"]),
        audio=tensors["audio_emb"][0],
        ref_latent=tensors["prefill.ref_latents"][0],
        motion_latents=tensors["prefill.motion_latents"][0],
    )
    blocks = list(sample_blocks(official_model, cond, plan, sink_distances(SINK_SEED), seeded_noise(plan), max_batch))
    per_clip = plan.geometry.blocks_per_clip
    for clip in range(plan.geometry.num_clips):
        ours = torch.cat(blocks[per_clip * clip : per_clip * (clip + 1)], dim=1)
        official = tensors[f"clip.{clip}.final_latents"]
        assert ours.shape == official.shape
        relative = ((ours - official).norm() / official.norm()).item()
        worst = (ours - official).abs().max().item()
        if max_batch == 1:  # the official loop's own arithmetic, to float32 rounding on another CPU
            assert worst <= EXACT_LOOP_TOLERANCE * official.abs().max().item(), (clip, worst)
        assert relative <= RELATIVE_TOLERANCE and worst <= RELATIVE_TOLERANCE * official.abs().max().item(), (
            clip,
            relative,
            worst,
        )
