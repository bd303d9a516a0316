"""`LiveAvatarRunner.load(placement)` on the tiny checkpoint (CPU, fp32, 128x128 px).

A placement that streams DiT blocks, step caches and the sink from host
memory renders the frames of the resident placement; placements this machine
cannot run are refused before anything loads, naming the option.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from avatar_batch.core.errors import UsageError
from avatar_batch.core.records import RenderRequest, RenderSettings, SpeechTrack
from avatar_batch.render.liveavatar.checkpoint import write_tiny_checkpoint
from avatar_batch.render.liveavatar.config import CONFIG_TINY
from avatar_batch.render.liveavatar.placement import Placement
from avatar_batch.render.liveavatar.runner import LiveAvatarRunner, Runtime
from avatar_batch.render.liveavatar.sampler import SamplerOptions
from avatar_batch.render.liveavatar.telemetry import PhaseClock
from tests.conftest import write_portrait, write_sine_wav

PX = 128
LAYERS = CONFIG_TINY.dit.num_layers


@pytest.fixture(scope="module")
def request_(tmp_path_factory) -> RenderRequest:
    root = tmp_path_factory.mktemp("job")
    weights = root / "weights"
    write_tiny_checkpoint(weights)
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


def frames_with(request: RenderRequest, placement_of) -> tuple[list[np.ndarray], LiveAvatarRunner]:
    runner = LiveAvatarRunner(Path(request.settings.weights_dir), Runtime.detect("cpu"))
    runner.load(placement_of(runner))
    plan = runner.plan_job(request)
    options, clock = SamplerOptions(), PhaseClock()
    cond = runner.condition(request, plan, options, clock)
    return list(runner.frames(cond, plan, options, clock)), runner


def test_a_streamed_placement_renders_the_resident_frames(request_):
    resident, _ = frames_with(request_, lambda r: r.resident_placement("none", "bf16"))
    streamed, runner = frames_with(request_, lambda r: streamed_placement(r.resident_placement("none", "bf16")))
    assert len(streamed) == len(resident) == 48
    assert all(np.array_equal(a, b) for a, b in zip(resident, streamed))
    assert runner.placement is not None and runner.placement.offload == "blocks"
    assert runner.copies is not None and runner.copies.counters.host_to_device > 0
    assert runner.host is not None and runner.host.offload == "model"  # helpers lent


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
