"""`LiveAvatarRunner.load(placement)` on the tiny checkpoint (CPU, fp32, 64x64 px).

A placement that streams DiT blocks, step caches and the sink from host
memory renders the latents and frames of the resident placement exactly;
8-bit weight storage and an fp8 KV cache (the options that run on a CPU) move
them, but by less than their tolerance (relative L2 of the latents, PSNR of
the frames, `render/quality.py`); placements this machine cannot run are
refused before anything loads, naming the option.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from avatar_batch.core.errors import UsageError
from avatar_batch.core.records import RenderRequest, RenderSettings, SpeechTrack
from avatar_batch.render.liveavatar.conditioning import Conditioning
from avatar_batch.render.liveavatar.config import CONFIG_TINY
from avatar_batch.render.liveavatar.placement import Placement
from avatar_batch.render.liveavatar.runner import LiveAvatarRunner, Runtime
from avatar_batch.render.liveavatar.sampler import SamplerOptions
from avatar_batch.render.liveavatar.telemetry import PhaseClock
from avatar_batch.render.quality import psnr_db, rel_l2
from tests.conftest import write_portrait, write_sine_wav

# What is compared (frames and latents against the resident render's) does not depend on the
# size, and the seven renders here are mostly the VAE's work: at 64 px, a third of 128 px's.
PX = 64
LAYERS = CONFIG_TINY.dit.num_layers


@pytest.fixture(scope="module")
def request_(tmp_path_factory, tiny_weights) -> RenderRequest:
    root = tmp_path_factory.mktemp("job")
    weights = tiny_weights
    write_portrait(root / "portrait.png", size=(PX, PX))
    wav = write_sine_wav(root / "speech.wav", duration_s=1.0)
    settings = RenderSettings(renderer="liveavatar", size=f"{PX}*{PX}", sample_steps=2, weights_dir=str(weights))
    speech = SpeechTrack(wav, wav, 1.0, -16.0, (), wav, wav, "tts")
    return RenderRequest("job", root / "portrait.png", "A doctor answers a question.", speech, settings)


def streamed_placement(resident: Placement) -> Placement:
    return replace(
        resident,
        offload="blocks",
        dit_layers_resident=1,
        kv_steps_resident=1,
        kv_steps_total=2,
        cond_cache="stream",
        helpers="lend",
        prefetch_layers=2,
    )


@dataclass
class Rendered:
    frames: np.ndarray  # (F, H, W, 3) uint8
    latents: torch.Tensor  # (16, F_latent, h, w) fp32, every sampled block in order
    cond: Conditioning
    runner: LiveAvatarRunner


def render_with(request: RenderRequest, placement_of, cond: Conditioning | None = None) -> Rendered:
    """One job on a runner loaded with `placement_of(runner)`; `cond` reuses another
    render's conditioning instead of computing it (see `test_8_bit_storage_...`)."""
    runner = LiveAvatarRunner(Path(request.settings.weights_dir), Runtime.detect("cpu"))
    runner.load(placement_of(runner))
    plan = runner.plan_job(request)
    options, clock = SamplerOptions(), PhaseClock()
    cond = cond or runner.condition(request, plan, options, clock)
    latents: list[torch.Tensor] = []
    frames = list(runner.frames(cond, plan, options, clock, latents_sink=lambda t: latents.append(t.clone())))
    return Rendered(np.stack(frames), torch.cat(latents, dim=1), cond, runner)


@pytest.fixture(scope="module")
def resident(request_) -> Rendered:
    """The plain render every other placement is held against."""
    return render_with(request_, lambda r: r.resident_placement("none", "bf16"))


def test_a_streamed_placement_renders_the_resident_frames(request_, resident):
    streamed = render_with(request_, lambda r: streamed_placement(r.resident_placement("none", "bf16")))
    assert len(streamed.frames) == len(resident.frames) == 48
    assert np.array_equal(streamed.frames, resident.frames)
    assert torch.equal(streamed.latents, resident.latents) and resident.latents.shape == (16, 12, PX // 8, PX // 8)
    runner = streamed.runner
    assert runner.placement is not None and runner.placement.offload == "blocks"
    assert runner.copies is not None and runner.copies.counters.host_to_device > 0
    assert runner.host is not None and runner.host.offload == "model"  # helpers lent


# Measured on this job: int8 0.3 %, fp8 1.5 %, fp8 KV 0.07 %, int4 5.2 % relative L2; PSNR 57, 50, 64, 39 dB
# (at 128 px: 0.3, 1.5, 0.04 and 5.3 %; 57, 50, 67 and 39 dB).
@pytest.mark.parametrize(
    ("formats", "max_rel_l2", "min_psnr_db"),
    [
        ({"weight_format": "int8"}, 0.02, 45.0),
        ({"weight_format": "fp8"}, 0.06, 40.0),
        ({"kv_format": "fp8"}, 0.01, 50.0),
        ({"weight_format": "int8", "kv_format": "fp8"}, 0.02, 45.0),
        ({"weight_format": "int4"}, 0.15, 32.0),
    ],
    ids=["int8-weights", "fp8-weights", "fp8-kv", "int8-weights+fp8-kv", "int4-weights"],
)
def test_low_bit_storage_stays_within_its_tolerance_of_the_resident_render(
    request_, resident, formats, max_rel_l2, min_psnr_db
):
    # The conditioning does not depend on the DiT's storage formats (the text embedding
    # stays in the model dtype, dit/fp8.py KEEP_IN_BF16), so the resident render's is
    # reused: the portrait's VAE encode is most of a tiny job on a CPU.

    def placement(runner: LiveAvatarRunner) -> Placement:
        return replace(runner.resident_placement("none", "bf16"), **formats)

    stored = render_with(request_, placement, cond=resident.cond)
    error = rel_l2(stored.latents, resident.latents)
    assert 0 < error <= max_rel_l2, error  # > 0: the format really was applied
    assert min_psnr_db <= psnr_db(stored.frames, resident.frames) < math.inf


def test_resident_placement_describes_the_old_modes(request_):
    runner = LiveAvatarRunner(Path(request_.settings.weights_dir), Runtime.detect("cpu"))
    placement = runner.resident_placement("model", "bf16")
    assert placement.dit_layers_resident == placement.dit_layers_total == LAYERS
    assert (placement.helpers, placement.compute, placement.streams_dit, placement.streams_kv) == (
        "lend",
        "fp32",
        False,
        False,
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"compute": "fp8", "weight_format": "fp8"}, "fp8 compute needs a CUDA GPU.*--weight-format int8"),
        ({"compute": "fp8", "weight_format": "int8"}, "fp8 compute needs fp8 weights"),
        ({"dit_layers_resident": LAYERS + 1}, "layers 4/3"),
        ({"kv_format": "int4"}, "kv=int4"),
        ({"prefetch_layers": 0}, "prefetch_layers must be >= 1"),
    ],
)
def test_placements_this_machine_cannot_run_are_refused_before_loading(request_, change, message):
    runner = LiveAvatarRunner(Path(request_.settings.weights_dir), Runtime.detect("cpu"))
    placement = replace(runner.resident_placement("none", "bf16"), **change)
    with pytest.raises(UsageError, match=message):
        runner.load(placement)
    assert not runner.loaded
