"""The `liveavatar` renderer end to end on the tiny checkpoint (CPU, fp32, 128x128 px;
64x64 px where the check does not depend on the frame size).

Covers identity and weight errors, limits before model work, frame counts
(48 per clip, trimmed to the speech), seeds, one load per run, offload modes,
the out-of-memory path, the OOM ladder, telemetry and flat memory.
"""

from __future__ import annotations

import ctypes
import gc
import weakref
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from avatar_batch.core.errors import OutOfMemoryError, UnavailableError, UsageError, WeightsError
from avatar_batch.core.records import VIDEO_FPS, RenderRequest, RenderSettings, SpeechTrack
from avatar_batch.render import open_renderer
from avatar_batch.render.liveavatar import memory
from avatar_batch.render.liveavatar import runner as runner_module
from avatar_batch.render.liveavatar.checkpoint import model_identity
from avatar_batch.render.liveavatar.memory import ComponentHost
from avatar_batch.render.liveavatar.renderer import RUNNER_VERSION, LiveAvatarRenderer, oom_ladder
from avatar_batch.render.liveavatar.sampler import SamplerOptions
from tests.conftest import write_portrait, write_sine_wav

PX = 128


@pytest.fixture(scope="module")
def weights(tiny_weights) -> Path:
    return tiny_weights


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    write_portrait(folder / "portrait.png", size=(PX, PX))
    write_portrait(folder / "wide.png", size=(1280, 720))
    return folder


@pytest.fixture(scope="module")
def settings(weights) -> RenderSettings:
    return RenderSettings(renderer="liveavatar", size=f"{PX}*{PX}", sample_steps=2, weights_dir=str(weights))


@pytest.fixture(scope="module")
def small(settings) -> RenderSettings:
    """For checks that do not depend on the frame size: at 64 px the decode, the portrait's
    motion encode and the sink refresh's 365-frame decode and encode cost a quarter."""
    return replace(settings, size="64*64")


@pytest.fixture(scope="module")
def renderer(settings):
    rendered = open_renderer(settings)
    yield rendered
    rendered.close()


def request_for(files: Path, settings: RenderSettings, duration_s: float, image: str = "portrait.png"):
    wav = files / f"speech_{duration_s:.2f}.wav"
    if not wav.exists():
        write_sine_wav(wav, duration_s=duration_s)
    speech = SpeechTrack(wav, wav, duration_s, -16.0, (), wav, wav, "tts")
    return RenderRequest("job", files / image, "A doctor answers a question.", speech, settings)


def render(renderer, request) -> tuple[list[np.ndarray], object]:
    stream = renderer.start(request)
    return list(stream), stream


# --- identity and weights -----------------------------------------------------------------


def test_identity_is_cheap_and_names_the_weights(settings, weights):
    fresh = LiveAvatarRenderer(settings)
    identity = fresh.identity()
    assert identity == f"{RUNNER_VERSION}:{model_identity(weights)}"
    assert fresh._runner is None  # nothing loaded
    assert LiveAvatarRenderer(settings, SamplerOptions(drop_first_frames=3)).identity() != identity


def test_missing_weights_are_reported_clearly(settings, tmp_path):
    with pytest.raises(UnavailableError, match="--weights"):
        LiveAvatarRenderer(replace(settings, weights_dir=None)).identity()
    with pytest.raises(UnavailableError, match="does not exist"):
        LiveAvatarRenderer(replace(settings, weights_dir=str(tmp_path / "nowhere"))).identity()
    with pytest.raises(WeightsError):
        LiveAvatarRenderer(replace(settings, weights_dir=str(tmp_path))).identity()


def test_fp8_on_the_cpu_is_a_usage_error(settings, files):
    fp8 = replace(settings, precision="fp8")
    with pytest.raises(UsageError, match="fp8"):
        LiveAvatarRenderer(fp8).identity()
    with pytest.raises(UsageError, match="fp8"):
        LiveAvatarRenderer(fp8).start(request_for(files, fp8, 1.0))


# --- limits ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, image, message",
    [
        ({"size": "1280*720"}, "wide.png", "286,720"),
        ({"frames_per_clip": 40}, "portrait.png", "multiple of 12"),
        ({"sample_steps": 5}, "portrait.png", "1..4"),
    ],
)
def test_limits_fail_before_any_model_work(settings, files, change, image, message):
    bad = replace(settings, **change)
    fresh = LiveAvatarRenderer(settings)  # the run's settings pass; this job's (an entry's, a rung's) do not
    with pytest.raises(UsageError, match=message):
        fresh.start(request_for(files, bad, 1.0, image))
    assert not fresh._runner.loaded


@pytest.mark.parametrize(
    "change, message",
    [
        ({"frames_per_clip": 40}, "frames per clip 40 is not a positive multiple of 12"),
        ({"sample_steps": 5}, "--steps 5 is outside 1..4"),
        ({"sample_steps": 0}, "--steps 0 is outside 1..4"),
    ],
)
def test_run_settings_past_the_model_limits_fail_when_the_renderer_opens(settings, change, message):
    with pytest.raises(UsageError, match=message.replace(".", r"\.")) as info:
        open_renderer(replace(settings, **change))
    assert info.value.exit_code == 2


# --- frames ------------------------------------------------------------------------------


@pytest.mark.parametrize("duration_s, clips, frames", [(1.0, 1, 25), (1.95, 2, 49)])
def test_frames_follow_the_speech(renderer, settings, files, duration_s, clips, frames):
    pulled, stream = render(renderer, request_for(files, settings, duration_s))
    assert stream.geometry.num_frames == frames and stream.geometry.fps == 25
    assert (stream.geometry.width_px, stream.geometry.height_px) == (PX, PX)
    assert len(pulled) == frames
    assert all(f.shape == (PX, PX, 3) and f.dtype == np.uint8 for f in pulled)
    assert stream.telemetry()["num_clips"] == clips


def test_clips_decode_to_48_frames_each_with_none_dropped(renderer, small, files):
    request = request_for(files, small, 1.95)
    renderer.start(request)  # makes sure the runner is loaded
    run = renderer._runner
    plan = run.plan_job(request)
    clock = runner_module.PhaseClock()
    cond = run.condition(request, plan, SamplerOptions(), clock)
    every = list(run.frames(cond, plan, SamplerOptions(), clock))
    assert plan.sampling.geometry.num_clips == 2
    assert len(every) == 96
    trimmed, _ = render(renderer, request)
    assert all(np.array_equal(a, b) for a, b in zip(trimmed, every))


def test_seed_reproduces_and_changes_the_video(renderer, small, files):
    first, _ = render(renderer, request_for(files, small, 1.0))
    again, _ = render(renderer, request_for(files, small, 1.0))
    other, _ = render(renderer, request_for(files, replace(small, seed=421), 1.0))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(np.stack(first), np.stack(other))


def test_offload_model_gives_the_same_frames(renderer, small, files):
    base, _ = render(renderer, request_for(files, small, 1.0))
    offloaded, stream = render(renderer, request_for(files, replace(small, offload="model"), 1.0))
    assert stream.telemetry()["offload"] == "model"
    assert all(np.array_equal(a, b) for a, b in zip(base, offloaded))


def test_offload_blocks_reloads_once_and_gives_the_same_frames(renderer, small, files):
    base, _ = render(renderer, request_for(files, small, 1.0))
    streamed, stream = render(renderer, request_for(files, replace(small, offload="blocks"), 1.0))
    placement = stream.telemetry()["placement"]
    assert (placement["offload"], placement["dit_layers_resident"], placement["cond_cache"]) == ("blocks", 0, "stream")
    assert all(np.array_equal(a, b) for a, b in zip(base, streamed))
    _, again = render(renderer, request_for(files, small, 1.0))
    assert again.telemetry()["load_s"] == 0  # auto keeps the loaded placement: no second reload


def test_a_run_no_rung_can_place_stops_before_loading(settings, monkeypatch):
    from avatar_batch.render.liveavatar import placement_report
    from avatar_batch.render.liveavatar.placement_plan import Machine

    tiny_gpu = Machine("Test GPU 0.5 GiB", 2**29, (9, 0), None, 2**36)
    monkeypatch.setattr(placement_report, "detect_machine", lambda *args, **kwargs: tiny_gpu)
    loads = []
    monkeypatch.setattr(runner_module, "load_dit", lambda *a, **k: loads.append(1))
    with pytest.raises(UnavailableError, match=r"does not fit Test GPU 0\.5 GiB.*budget 0\.5 GiB"):
        LiveAvatarRenderer(settings).identity()
    assert loads == []


def test_one_load_serves_every_job(small, files, monkeypatch):
    loads = []
    real_load = runner_module.load_dit
    monkeypatch.setattr(runner_module, "load_dit", lambda *a, **k: loads.append(1) or real_load(*a, **k))
    fresh = LiveAvatarRenderer(small)
    first = fresh.start(request_for(files, small, 1.0))
    list(first)
    second = fresh.start(request_for(files, small, 1.0))
    list(second)
    assert len(loads) == 1
    assert first.telemetry()["load_s"] > 0 and second.telemetry()["load_s"] == 0
    assert second.telemetry()["reference_s"] < first.telemetry()["reference_s"]  # portrait latents reused
    # The job that loaded says where that time went; the next one, which loaded nothing, does not.
    parts = first.telemetry()["load_parts_s"]
    assert set(parts) == {"text", "audio", "vae", "dit"}  # no compile on a CPU
    assert all(seconds > 0 for seconds in parts.values())
    # Each part and the total are rounded to the millisecond: half a millisecond each may go either way.
    assert sum(parts.values()) <= first.telemetry()["load_s"] + 0.0005 * (len(parts) + 1)
    assert "load_parts_s" not in second.telemetry()
    fresh.close()


def test_a_dit_that_fails_to_load_fails_the_job_and_loads_nothing(small, files, monkeypatch):
    def broken(*args, **kwargs):
        raise WeightsError("shard 3 of the DiT is truncated")

    monkeypatch.setattr(runner_module, "load_dit", broken)
    fresh = LiveAvatarRenderer(small)
    with pytest.raises(WeightsError, match="shard 3"):
        fresh.start(request_for(files, small, 1.0))
    assert fresh._runner is None or not fresh._runner.loaded
    fresh.close()


def test_umt5_encodes_each_prompt_once_per_run(small, files, monkeypatch):
    fresh = LiveAvatarRenderer(small)
    asked: list[list[str]] = []
    list(fresh.start(request_for(files, small, 1.0)))
    with fresh._runner.host.lend("text") as text_encoder:
        real = text_encoder.encode
        monkeypatch.setattr(text_encoder, "encode", lambda texts: asked.append(list(texts)) or real(texts))
    other = replace(request_for(files, small, 1.0), prompt="A nurse explains the fasting rules.")
    first, again = render(fresh, other)[0], render(fresh, other)[0]
    list(fresh.start(request_for(files, small, 1.0)))
    assert asked == [["A nurse explains the fasting rules."]]  # the first prompt was kept from the first job
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    runner = fresh._runner
    fresh.close()
    assert runner._prompt_states.cache_info().currsize == 0  # closing lets the states go


def test_telemetry_describes_the_render(renderer, settings, files, weights):
    latents: list[torch.Tensor] = []
    stream = renderer.start(request_for(files, settings, 1.0)).observe_latents(latents.append)
    frames = list(stream)
    with pytest.raises(RuntimeError, match="before the stream is iterated"):
        stream.observe_latents(latents.append)
    data = stream.telemetry()
    # 25 frames pull 3 blocks of 12 (16 latent channels, 3 latent frames, 128 px / 8)
    assert len(frames) == 25 and [tuple(t.shape) for t in latents] == [(16, 3, 16, 16)] * 3
    assert data["frames"] == 25 and data["width"] == PX and data["height"] == PX
    assert data["device"] == "cpu" and data["dtype"] == "float32" and data["peak_gpu_gib"] == 0.0
    assert data["model_identity"].endswith(model_identity(weights))
    assert data["sample_steps"] == 2 and data["size"] == f"{PX}*{PX}" and data["num_clips"] == 1
    # auto keeps whatever placement the run loaded (this module's renderer also ran `model` and `blocks`)
    assert data["offload"] == data["placement"]["offload"]
    assert data["placement"]["compute"] == "fp32" and data["placement"]["dit_layers_total"] == 3
    assert data["expected_peak_gpu_gib"] > 0 and data["peak_rss_scope"] in ("job", "process")
    assert data["expected_host_gib"] > 2  # the process itself, at least
    assert data["generation_fps"] > 0 and data["peak_rss_gib"] > 0 and data["render_s"] > 0
    assert data["real_time_factor"] == pytest.approx(data["generation_fps"] / VIDEO_FPS, abs=1e-3)
    assert data["compile_cache"] == "off"  # the CPU runs the blocks eager: nothing to keep
    for phase in ("text", "audio", "sampling", "decode"):
        assert data[f"{phase}_s"] > 0, phase


# --- out of memory -----------------------------------------------------------------------


def _cuda_oom(*_args, **_kwargs):
    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_out_of_memory_while_sampling_frees_the_job_and_raises(renderer, small, files, monkeypatch):
    request = request_for(files, small, 1.95)
    list(renderer.start(request))  # loaded and warm
    dit = renderer._runner.dit
    caches: list[weakref.ref] = []
    real_new_caches, real_denoise = dit.new_step_caches, dit.denoise_wave
    calls = []

    def new_step_caches(*args, **kwargs):
        made = real_new_caches(*args, **kwargs)
        caches.extend(weakref.ref(c) for c in made)
        return made

    def denoise_wave(*args, **kwargs):
        calls.append(1)
        return _cuda_oom() if len(calls) == 3 else real_denoise(*args, **kwargs)

    emptied = []
    monkeypatch.setattr(dit, "new_step_caches", new_step_caches)
    monkeypatch.setattr(dit, "denoise_wave", denoise_wave)
    monkeypatch.setattr(memory.torch.cuda, "empty_cache", lambda: emptied.append(1))
    stream = renderer.start(request)
    with pytest.raises(OutOfMemoryError, match="out of accelerator memory") as caught:
        list(stream)
    gc.collect()
    assert caches and all(ref() is None for ref in caches)  # freed even while the error is held
    assert emptied
    assert isinstance(caught.value, OutOfMemoryError)
    monkeypatch.undo()
    assert len(list(renderer.start(request))) == 49  # the renderer is still usable


def test_out_of_memory_while_conditioning_raises(renderer, small, files, monkeypatch):
    list(renderer.start(request_for(files, small, 1.0)))
    with renderer._runner.host.lend("text") as text_encoder:
        monkeypatch.setattr(text_encoder, "encode", _cuda_oom)
    unseen = replace(request_for(files, small, 1.0), prompt="A nurse answers a question.")  # not cached yet
    with pytest.raises(OutOfMemoryError, match="conditioning"):
        renderer.start(unseen)


def test_ladder_streams_then_shrinks_the_cache_then_steps_down_the_presets():
    high = RenderSettings(renderer="liveavatar", preset="high", size="704*384", sample_steps=4)
    rungs = oom_ladder(high)
    assert [(r.offload, r.kv_format, r.preset, r.size, r.sample_steps) for r in rungs] == [
        ("blocks", "bf16", "high", "704*384", 4),
        ("blocks", "fp8", "high", "704*384", 4),
        ("blocks", "fp8", "standard", "688*368", 4),
        ("blocks", "fp8", "quick", "384*256", 3),
    ]
    assert [r.offload for r in oom_ladder(replace(high, offload="none"))][:3] == ["model", "blocks", "blocks"]
    assert oom_ladder(replace(high, preset="quick", size="384*256", offload="blocks", kv_format="fp8")) == []
    assert [(r.kv_format, r.preset) for r in LiveAvatarRenderer(high).ladder(replace(high, offload="blocks"))] == [
        ("fp8", "high"),
        ("fp8", "standard"),
        ("fp8", "quick"),
    ]


# --- placement ---------------------------------------------------------------------------


@dataclass
class Placed:
    device: torch.device


def test_component_host_parks_and_lends():
    moves = []

    def mover(component, device):
        moves.append(device.type)
        return Placed(device)

    meta = torch.device("meta")  # stands in for the GPU
    offloaded = ComponentHost(meta, offload="model")
    offloaded.add("t5", Placed(torch.device("cpu")), torch.device("cpu"), mover)
    assert offloaded.device_of("t5").type == "cpu" and moves == []
    with offloaded.lend("t5") as lent:
        assert lent.device.type == "meta"
    assert offloaded.device_of("t5").type == "cpu" and moves == ["meta", "cpu"]
    resident = ComponentHost(meta, offload="none")
    resident.add("t5", Placed(torch.device("cpu")), torch.device("cpu"), mover)
    with resident.lend("t5") as lent:
        assert lent.device.type == "meta"
    assert resident.device_of("t5").type == "meta"
    resident.set_offload("model")
    assert resident.device_of("t5").type == "cpu"
    with pytest.raises(UsageError):
        resident.set_offload("block")


# --- memory stays flat -------------------------------------------------------------------


def _rss_bytes() -> int:
    """Resident memory after handing freed heap pages back to the OS, so the
    number follows live allocations rather than what malloc keeps cached."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096


# A warm-up answer of two clips runs a job's start, a clip boundary and a job's end: what
# the streaming loop allocates per clip does not grow with the answer, so it need not be long.
WARM_UP_S = 2.0


def _rss_growth_while_pulling(renderer, request, settle_frames: int = 60) -> tuple[int, int]:
    """Peak resident memory after the first `settle_frames` frames minus the
    resident memory at that point, and the number of frames. Conditioning
    (whose size follows the speech length by design) is over by then, so any
    growth comes from the streaming loop."""
    gc.collect()
    baseline, peak, frames = 0, 0, 0
    for _ in renderer.start(request):
        frames += 1
        if frames == settle_frames:
            baseline = peak = _rss_bytes()
        elif frames > settle_frames and frames % 12 == 0:  # once per decoded block
            peak = max(peak, _rss_bytes())
    return peak - baseline, frames


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc")
def test_memory_does_not_grow_with_the_number_of_clips(renderer, settings, files):
    """Resident memory sampled at every frame of a 14 s answer (8 clips, 350
    frames) stays flat once streaming runs. Keeping the frames (49 KB each) or
    the decoded blocks (2.4 MB each) would add 14 MB or more over the 290
    frames after the baseline."""
    _rss_growth_while_pulling(renderer, request_for(files, settings, WARM_UP_S))  # warm allocator and caches
    growth, frames = _rss_growth_while_pulling(renderer, request_for(files, settings, 14.0))
    assert frames == 350
    assert growth < 6 * 2**20, growth


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc")
def test_memory_stays_flat_with_the_sink_refresh(renderer, small, files):
    """The refresh path (clip 0 kept for its re-encode, a second prefill) over an
    8-clip answer: nothing grows after the baseline at frame 60, by which time the
    refresh is over. At 64 px, where the refresh's 365-frame decode and encode cost a
    quarter of 128 px's; the test above holds the plain loop to the same bound at 128 px."""
    # The warm-up leaves the refresh out: the refresh ends before the baseline frame (its decode
    # and encode never count), and the loop after it is the plain one.
    _rss_growth_while_pulling(renderer, request_for(files, small, WARM_UP_S))
    growth, frames = _rss_growth_while_pulling(renderer, request_for(files, replace(small, sink_refresh=True), 14.0))
    assert frames == 350
    # Keeping the 290 frames after the baseline (12 KB each at 64 px) would add 3.5 MB;
    # an idle run grows by well under 0.1 MB.
    assert growth < 2 * 2**20, growth


def test_sink_refresh_changes_only_the_clips_after_the_first(renderer, small, files):
    plain, _ = render(renderer, request_for(files, small, 5.0))
    refreshed, _ = render(renderer, request_for(files, replace(small, sink_refresh=True), 5.0))
    assert len(refreshed) == len(plain) == 125  # 3 clips, trimmed to the speech
    first = np.stack(plain[:48]).astype(int) - np.stack(refreshed[:48])
    assert np.abs(first).max() <= 1  # the same latents, up to the rounding of other batch sizes
    later = np.stack(plain[48:]).astype(int) - np.stack(refreshed[48:])
    # The tiny random DiT leans little on its sink; without the refresh the difference would be <= 1.
    assert np.abs(later).max() > 1 and np.abs(later).mean() > 0.4
