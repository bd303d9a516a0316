"""CUDA graphs of the layer pass (`dit/wave_graphs.py`).

On the CPU a CUDA graph is replaced by its one edge: a fake whose `replay` runs the
recorded Python body again. Like a real graph it reads the static buffers it was
recorded on and the Python values of the capture, so a wave input the signature
or the static buffers miss shows up as latents that differ from the plain run.
The real capture runs in the GPU-marked test at the end.
"""

from __future__ import annotations

import pytest
import torch

from avatar_batch.render.liveavatar.checkpoint.tiny import random_dit
from avatar_batch.render.liveavatar.config import CONFIG_TINY
from avatar_batch.render.liveavatar.dit.wave_graphs import WaveGraphs
from avatar_batch.render.liveavatar.sampler import sample_blocks, seeded_noise, sink_distances
from tests.render.liveavatar.test_sampler import make_cond, make_plan


class ReplayedBody:
    def __init__(self, body):
        self.body = body

    def replay(self) -> None:
        self.body()


class FakeCapture:
    def __init__(self):
        self.recorded = 0

    def __call__(self, body):
        self.recorded += 1
        return ReplayedBody(body)


def doubled(calls: list):
    def body(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        calls.append(tensors)
        return [tensors[0] * 2, tensors[1] + tensors[0]]

    return body


def test_a_signature_runs_eager_first_then_is_recorded_once_and_replayed():
    graphs, calls = WaveGraphs(FakeCapture()), []
    owner = object()
    first = [torch.tensor([1.0, 2.0]), torch.tensor([3.0])]
    out = graphs.run("wave", [owner], first, doubled(calls))
    assert calls[0][0] is first[0]  # eager: the caller's own tensors
    assert graphs.counts().recorded == 0
    for value in (5.0, 7.0):
        new = [torch.tensor([value, 1.0]), torch.tensor([4.0])]
        out = graphs.run("wave", [owner], new, doubled(calls))
        assert torch.equal(out[0], new[0] * 2) and torch.equal(out[1], new[1] + new[0])
    assert graphs.counts().recorded == 1 and graphs.counts().replayed == 2
    assert all(c[0] is calls[1][0] for c in calls[1:])  # every replay reads the static buffers


def test_static_buffers_keep_the_strides_of_the_inputs():
    graphs, calls = WaveGraphs(FakeCapture()), []
    transposed = [torch.arange(6.0).reshape(3, 2).t(), torch.zeros(1)]
    for _ in range(2):
        graphs.run("wave", [], transposed, doubled(calls))
    assert calls[1][0].stride() == transposed[0].stride() and torch.equal(calls[1][0], transposed[0])


def test_signatures_with_equal_shapes_share_static_buffers_and_clear_drops_graphs():
    capture = FakeCapture()
    graphs, calls = WaveGraphs(capture), []
    owner = object()
    x = [torch.ones(3), torch.zeros(1)]
    for key in ("a", "b", "a", "b"):
        graphs.run(key, [owner], x, doubled(calls))
    assert capture.recorded == 2 and calls[2][0] is calls[3][0]
    graphs.clear()  # another job's caches
    graphs.run("a", [owner], x, doubled(calls))
    assert capture.recorded == 2 and calls[-1][0] is x[0]  # eager again


@pytest.fixture(scope="module")
def dit():
    return random_dit(CONFIG_TINY.dit, seed=0, dtype=torch.float32)


def job(dit, seed: int, clips: int = 3, steps: int = 3) -> list[torch.Tensor]:
    plan = make_plan(clips, steps=steps, seed=seed)
    cond = make_cond(dit, plan, seed=seed)
    return list(sample_blocks(dit, cond, plan, sink_distances(plan.seed), seeded_noise(plan)))


def test_replayed_waves_give_the_latents_of_the_plain_run(dit):
    """Three jobs with different inputs: the first records nothing, later ones replay
    graphs recorded on the first's caches (kept between jobs) and match plain runs."""
    plain = [job(dit, seed) for seed in (1, 2, 3)]
    graphs = WaveGraphs(FakeCapture())
    dit.wave_graphs = graphs
    try:
        graphed = [job(dit, seed) for seed in (1, 2, 3)]
    finally:
        dit.wave_graphs, dit._kept_caches = None, {}
    waves_per_job = len(plain[0]) + 3 - 1  # blocks + steps - 1
    assert 0 < graphs.counts().recorded <= waves_per_job
    assert graphs.counts().replayed >= 2 * waves_per_job  # every wave of the later jobs
    for plain_job, graphed_job in zip(plain, graphed):
        for a, b in zip(plain_job, graphed_job, strict=True):
            assert torch.equal(a, b)


def test_jobs_reuse_the_kept_caches_only_with_graphs(dit):
    def caches_of_two_jobs():
        ids = []
        for _ in range(2):
            with dit.job_caches(64, 64, 2, 6) as (cond, steps):
                ids.append((id(cond), id(steps[0])))
        return ids

    plain = caches_of_two_jobs()
    assert not dit._kept_caches
    dit.wave_graphs = WaveGraphs(FakeCapture())
    try:
        kept = caches_of_two_jobs()
        with dit.job_caches(64, 64, 2, 6) as (cond, _), dit.job_caches(64, 64, 2, 6) as (other, _):
            assert other is not cond  # never one set to two jobs at once
        dit._kept_caches = {}
        plan = make_plan(2, steps=2)
        frames = sample_blocks(dit, make_cond(dit, plan), plan, sink_distances(0), seeded_noise(plan))
        next(frames)
        frames.close()  # what a job's stream does once it has its frames
        assert len(dit._kept_caches) == 1
    finally:
        dit.wave_graphs, dit._kept_caches = None, {}
    assert kept[0] == kept[1]
    assert plain[0] != kept[0] or plain[1] != kept[1]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graphs_of_the_compiled_tiny_dit_match_its_eager_waves():
    from avatar_batch.render.liveavatar.dit.compiled import compile_blocks

    dit = random_dit(CONFIG_TINY.dit, seed=0, dtype=torch.bfloat16).to("cuda")
    compile_blocks(dit)
    plain = [job(dit, seed) for seed in (1, 2, 3)]
    dit.wave_graphs = WaveGraphs()
    graphed = [job(dit, seed) for seed in (1, 2, 3)]
    assert dit.wave_graphs.counts().replayed > 0
    for plain_job, graphed_job in zip(plain, graphed):
        for a, b in zip(plain_job, graphed_job, strict=True):
            assert torch.equal(a, b)
