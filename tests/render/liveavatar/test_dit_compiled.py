"""The compiled DiT (the GPU path) computes what the eager one does.

Runs inductor on the CPU with the tiny model: the same graphs, fused the same
way, that a GPU run compiles for its own device."""

from __future__ import annotations

import pytest
import torch

from avatar_batch.render.liveavatar.checkpoint.tiny import random_dit
from avatar_batch.render.liveavatar.conditioning import Conditioning
from avatar_batch.render.liveavatar.config import CONFIG_TINY
from avatar_batch.render.liveavatar.dit import PARITY, BlockInputs, DiTNumerics
from avatar_batch.render.liveavatar.dit.compiled import compile_blocks, compile_stats
from avatar_batch.render.liveavatar.limits import ClipGeometry
from avatar_batch.render.liveavatar.sampler import SamplingPlan, sample_blocks, seeded_noise, sink_distances
from avatar_batch.render.liveavatar.schedule import dmd_schedule

C, LAT = 16, 8  # 64x64 px
H_PX = W_PX = 64


def denoise_three_blocks(model) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    ref, motion = torch.randn(C, 1, LAT, LAT, generator=g), torch.randn(C, 19, LAT, LAT, generator=g)
    context = model.embed_text(torch.randn(7, 4096, generator=g))
    cond = model.new_cond_cache(H_PX, W_PX)
    step = model.new_step_caches(H_PX, W_PX, num_steps=1)[0]
    model.prefill_sink(ref, motion, context, cond)
    outs = []
    for j in range(3):
        block = BlockInputs(
            torch.randn(C, 3, LAT, LAT, generator=g),
            857.6923,
            torch.randn(25, 32, 12, generator=g),
            first_frame=3 * j,
            sink_distance=5 + j,
        )
        outs.append(model.denoise_block(block, step, cond))
    return outs


# With the official bf16 rounding before the text LayerNorm, fused kernels can
# land a value on the other side of a bf16 rounding step: a looser bound.
@pytest.mark.slow
@pytest.mark.parametrize("numerics, tolerance", [(DiTNumerics(False, False), 1e-4), (PARITY, 3e-3)])
def test_compiled_blocks_equal_eager_blocks(numerics, tolerance):
    eager = denoise_three_blocks(random_dit(CONFIG_TINY.dit, seed=0, dtype=torch.float32, numerics=numerics))
    compiled_model = compile_blocks(random_dit(CONFIG_TINY.dit, seed=0, dtype=torch.float32, numerics=numerics))
    compiled = denoise_three_blocks(compiled_model)
    for got, want in zip(compiled, eager):
        torch.testing.assert_close(got, want, rtol=tolerance, atol=tolerance)
    stats = compile_stats()
    assert stats["unique_graphs"] >= 1 and stats["cache_limit_hits"] == 0


def test_a_four_step_job_traces_thirteen_graphs():
    # Every graph is traced again by each new process, compile cache or not: this
    # pins the count for the shape of a benchmark job (3 clips of 48 frames, 4 steps)
    # so that a change which splits a graph, or adds shapes, shows.
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    dit = compile_blocks(random_dit(CONFIG_TINY.dit, seed=0, dtype=torch.float32), backend="eager")
    plan = SamplingPlan(ClipGeometry(H_PX, W_PX, 48, 3), dmd_schedule(4), seed=420)
    g = torch.Generator().manual_seed(0)
    cond = Conditioning(
        dit.embed_text(torch.randn(6, 4096, generator=g)),
        torch.randn(25, CONFIG_TINY.dit.audio_dim, plan.geometry.num_video_frames, generator=g),
        torch.randn(C, 1, LAT, LAT, generator=g),
        torch.randn(C, 19, LAT, LAT, generator=g),
    )
    blocks = list(sample_blocks(dit, cond, plan, sink_distances(plan.seed), seeded_noise(plan)))
    assert len(blocks) == 12
    assert compile_stats() == {"unique_graphs": 13, "cache_limit_hits": 0}
