"""The `liveavatar` renderer on a CUDA GPU (tiny checkpoint): bf16, offload modes,
GPU memory accounting and a real accelerator out-of-memory. Run with `-m gpu`
on a machine with CUDA; skipped elsewhere."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from avatar_batch.core.errors import OutOfMemoryError
from avatar_batch.core.records import RenderRequest, RenderSettings, SpeechTrack
from avatar_batch.render.liveavatar.checkpoint import write_tiny_checkpoint
from avatar_batch.render.liveavatar.renderer import LiveAvatarRenderer
from tests.conftest import write_portrait, write_sine_wav

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
PX = 256


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[RenderSettings, RenderRequest]:
    root = tmp_path_factory.mktemp("gpu")
    write_tiny_checkpoint(root / "weights")
    image = write_portrait(root / "portrait.png", size=(PX, PX))
    wav = write_sine_wav(root / "speech.wav", duration_s=1.95)
    settings = RenderSettings(
        renderer="liveavatar", size=f"{PX}*{PX}", sample_steps=4, weights_dir=str(root / "weights")
    )
    speech = SpeechTrack(wav, wav, 1.95, -16.0, (), wav, wav, "tts")
    return settings, RenderRequest("gpu", image, "A doctor answers.", speech, settings)


@pytest.fixture(scope="module")
def renderer(setup):
    rendered = LiveAvatarRenderer(setup[0])
    yield rendered
    rendered.close()


def test_renders_in_bf16_on_the_gpu_in_both_offload_modes(renderer, setup):
    settings, request = setup
    stream = renderer.start(request)
    frames = list(stream)
    data = stream.telemetry()
    assert len(frames) == 49 and frames[0].shape == (PX, PX, 3)
    assert data["device"].startswith("cuda") and data["dtype"] == "bfloat16"
    assert data["num_clips"] == 2 and data["peak_gpu_gib"] > 0
    host = renderer._runner.host
    assert all(host.device_of(name).type == "cuda" for name in ("text", "audio", "vae"))
    offloaded = renderer.start(replace(request, settings=replace(settings, offload="model")))
    again = list(offloaded)
    assert all(host.device_of(name).type == "cpu" for name in ("text", "audio", "vae"))
    assert renderer._runner.dit.device.type == "cuda"  # the DiT stays resident
    difference = np.abs(np.stack(frames).astype(int) - np.stack(again).astype(int))
    assert difference.mean() < 0.5, difference.mean()
    print("telemetry", data)


def test_a_real_cuda_out_of_memory_is_translated_and_freed(renderer, setup, monkeypatch):
    _, request = setup
    list(renderer.start(request))
    torch.cuda.synchronize()
    baseline = torch.cuda.memory_allocated()
    dit = renderer._runner.dit
    real = dit.denoise_wave
    calls = []

    def greedy(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            torch.empty(2**50, dtype=torch.uint8, device=dit.device)  # 1 PiB: always too much
        return real(*args, **kwargs)

    monkeypatch.setattr(dit, "denoise_wave", greedy)
    with pytest.raises(OutOfMemoryError):
        list(renderer.start(request))
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() <= baseline  # caches and activations of the job are gone
    monkeypatch.undo()
    assert len(list(renderer.start(request))) == 49


def test_later_jobs_replay_cuda_graphs_of_the_layer_pass_and_render_the_same_frames(setup):
    """With --cuda-graphs the caches of a job stay for the next of the same size, so its waves replay."""
    settings, request = setup
    graphed = replace(settings, cuda_graphs=True)
    renderer = LiveAvatarRenderer(graphed)
    try:
        runs = []
        for _ in range(3):
            stream = renderer.start(replace(request, settings=graphed))
            runs.append((np.stack(list(stream)), stream.telemetry()))
    finally:
        renderer.close()
    assert runs[2][1]["cuda_graphs"]["replayed"] > 0
    assert np.array_equal(runs[0][0], runs[2][0])
