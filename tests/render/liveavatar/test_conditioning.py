"""Per-job conditioning: clip counts from the speech length (docs/model.md §3.3 table), the
portrait in pixels, the reference and motion latents (docs/model.md §2.8, with the
fixed-point shortcut checked against the official 365-frame encode), the text
context (prompt only) and the per-frame audio features, on the tiny networks."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from avatar_batch.render.liveavatar.audio_encoder import load_audio_encoder, load_speech_16k
from avatar_batch.render.liveavatar.checkpoint import write_tiny_checkpoint
from avatar_batch.render.liveavatar.conditioning import (
    DIT_MOTION_LATENTS,
    MOTION_PROBE_FRAMES,
    OFFICIAL_MOTION_FRAMES,
    audio_frames,
    clips_for_speech,
    motion_latents,
    portrait_pixels,
    prompt_states,
    reference_latent,
    refreshed_sink,
    still_video_latents,
)
from avatar_batch.render.liveavatar.config import CONFIG_TINY
from avatar_batch.render.liveavatar.text_encoder import load_text_encoder
from avatar_batch.render.liveavatar.vae import load_vae
from tests.conftest import write_portrait, write_sine_wav

PX = 64
# The refresh decodes and encodes a 365-frame video several times a test; what it must equal
# (the official online decode) does not depend on the frame size, and 32 px takes half the time.
REFRESH_PX = 32


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("weights")).dit_dir


@pytest.fixture(scope="module")
def vae(ckpt_dir):
    return load_vae(ckpt_dir, device="cpu", dtype=torch.float32)


@pytest.fixture(scope="module")
def portrait(tmp_path_factory) -> Path:
    return write_portrait(tmp_path_factory.mktemp("img") / "p.png", size=(96, 120))


@pytest.fixture(scope="module")
def pixels(portrait) -> torch.Tensor:
    return portrait_pixels(portrait, PX, PX, "cover")


def official_still_encode(vae, pixels: torch.Tensor) -> torch.Tensor:
    """(1, 16, 92, h, w): the official encode of the 365-frame still video of `pixels` (3, H, W)."""
    return vae.encode(pixels[None, :, None].expand(1, 3, OFFICIAL_MOTION_FRAMES, *pixels.shape[1:]))


@pytest.fixture(scope="module")
def official_still(vae, pixels) -> torch.Tensor:
    """`official_still_encode` of `pixels`, made once for the tests that compare with it."""
    return official_still_encode(vae, pixels)


# --- clip counts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "duration_s, clips", [(1.0, 1), (1.95, 2), (5.0, 3), (10.0, 6), (37.3, 20)]
)  # docs/model.md §3.3 worked examples
def test_clip_count_follows_the_speech_length(duration_s, clips):
    assert clips_for_speech(round(duration_s * 16_000), 48) == clips


def test_num_clip_caps_the_count():
    assert clips_for_speech(10 * 16_000, 48, cap=2) == 2
    assert clips_for_speech(1 * 16_000, 48, cap=5) == 1


# --- the portrait ----------------------------------------------------------------------


def test_portrait_pixels_cover_and_black_bars(tmp_path):
    wide = tmp_path / "wide.png"
    Image.fromarray(np.full((100, 300, 3), 200, dtype=np.uint8)).save(wide)
    cover = portrait_pixels(wide, 128, 64, "cover")  # a tall frame from a wide picture
    assert cover.shape == (3, 128, 64) and cover.dtype == torch.float32
    assert cover.min() >= -1 and cover.max() <= 1
    assert not (cover == -1).all(dim=0).any()  # filled edge to edge
    tall = tmp_path / "tall.png"
    Image.fromarray(np.full((300, 100, 3), 200, dtype=np.uint8)).save(tall)
    black = portrait_pixels(tall, 64, 128, "black")  # resized by the short side: narrower than the frame
    assert (black[:, :, 0] == -1).all() and (black[:, :, -1] == -1).all()  # official black side bars


# --- VAE latents -----------------------------------------------------------------------


def test_reference_latent_is_the_second_latent_of_five_copies(vae, pixels):
    ref = reference_latent(vae, pixels)
    assert ref.shape == (16, 1, PX // 8, PX // 8)
    five = vae.encode(pixels[None, :, None].expand(1, 3, 5, PX, PX))
    assert torch.equal(ref, five[0, :, 1:2])
    assert not torch.equal(ref, five[0, :, 0:1])


def test_motion_latents_equal_the_newest_of_the_official_365_frame_encode(vae, pixels, official_still):
    ours = motion_latents(vae, pixels)
    official = official_still[0]
    assert official.shape[1] == 92
    assert ours.shape == (16, DIT_MOTION_LATENTS, PX // 8, PX // 8)
    assert torch.equal(ours, official[:, -DIT_MOTION_LATENTS:])
    # The 73-frame variant would not do: its newest 19 include the start-up transient.
    short = vae.encode(pixels[None, :, None].expand(1, 3, 73, PX, PX))[0]
    assert not torch.equal(short, official[:, -DIT_MOTION_LATENTS:])


class ScriptedVae:
    """Records the frame counts asked for; latents settle after `settle` latents or never."""

    def __init__(self, settle: int | None):
        self.settle, self.frames_asked = settle, []

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        frames = video.shape[2]
        self.frames_asked.append(frames)
        n = 1 + (frames - 1) // 4
        index = torch.arange(n, dtype=torch.float32)
        if self.settle is not None:
            index = index.clamp(max=self.settle)
        return index.view(1, 1, n, 1, 1).expand(1, 16, n, 2, 2).clone()


def test_motion_uses_the_short_probe_once_the_encoder_settles():
    vae = ScriptedVae(settle=20)
    out = motion_latents(vae, torch.zeros(3, 16, 16))
    assert vae.frames_asked == [MOTION_PROBE_FRAMES]
    assert (out == 20).all() and out.shape[1] == DIT_MOTION_LATENTS


def test_motion_falls_back_to_the_official_encode_when_the_probe_has_not_settled():
    vae = ScriptedVae(settle=None)
    out = motion_latents(vae, torch.zeros(3, 16, 16))
    assert vae.frames_asked == [MOTION_PROBE_FRAMES, OFFICIAL_MOTION_FRAMES]
    assert out[0, :, 0, 0].tolist() == list(range(92 - 19, 92))


# --- the sink refresh (official online decode) ---------------------------------------------


@pytest.fixture(scope="module")
def refresh_pixels(portrait) -> torch.Tensor:
    return portrait_pixels(portrait, REFRESH_PX, REFRESH_PX, "cover")


@pytest.fixture(scope="module")
def refresh_still(vae, refresh_pixels) -> torch.Tensor:
    """`official_still_encode` of `refresh_pixels`, made once for the tests that compare with it."""
    return official_still_encode(vae, refresh_pixels)


def official_refresh(
    vae, pixels: torch.Tensor, motion_92: torch.Tensor, clip: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The official clip-0 post-process with `--enable_online_decode`, step by step (docs/model.md §2.9.3, §5);
    `motion_92` is `official_still_encode(vae, pixels)`, its first step."""
    frames_per_clip = 4 * clip.shape[1]
    last_frames = pixels[None, :, None].expand(1, 3, OFFICIAL_MOTION_FRAMES, *pixels.shape[1:])  # 5 x 73 copies
    image = vae.decode(torch.cat([motion_92, clip[None]], dim=2))[:, :, -frames_per_clip:][:, :, 3:]
    overlap = min(73, image.shape[2])
    last_frames = torch.cat([last_frames[:, :, overlap:], image[:, :, -overlap:]], dim=2)
    motion = vae.encode(last_frames)[0, :, -DIT_MOTION_LATENTS:]
    return clip[:, 0:1], motion


def test_still_video_latents_equal_the_whole_official_365_frame_encode(vae, pixels, official_still):
    assert torch.equal(still_video_latents(vae, pixels), official_still[0])


def refresh_clip(latent_frames: int) -> torch.Tensor:
    """Clip 0's denoised latents (16, F, h, w) at `REFRESH_PX`, seeded."""
    latent_px = REFRESH_PX // 8
    return torch.randn(16, latent_frames, latent_px, latent_px, generator=torch.Generator().manual_seed(5))


@pytest.fixture(scope="module")
def refreshed(vae, refresh_pixels) -> Callable[[int], tuple[torch.Tensor, torch.Tensor]]:
    """`refreshed_sink` of `refresh_clip(F)` with the default decoder room, made once per F:
    two tests check the same result (against the official decode, and against single-latent calls)."""
    return cache(lambda latent_frames: refreshed_sink(vae, refresh_pixels, refresh_clip(latent_frames)))


@pytest.mark.parametrize("latent_frames", [12, 6])  # 48-frame clips keep 45 frames, 24-frame clips 21
def test_refreshed_sink_follows_the_official_online_decode(
    vae, refresh_pixels, refresh_still, refreshed, latent_frames
):
    pixels, latent_px = refresh_pixels, REFRESH_PX // 8
    clip = refresh_clip(latent_frames)
    ref, motion = refreshed(latent_frames)
    official_ref, official_motion = official_refresh(vae, pixels, refresh_still, clip)
    assert ref.shape == (16, 1, latent_px, latent_px) and motion.shape == (16, DIT_MOTION_LATENTS, latent_px, latent_px)
    assert torch.equal(ref, official_ref)  # clip 0's first generated latent frame
    # The stream decode batches latents per call, so it equals the one-shot decode to rounding.
    torch.testing.assert_close(motion, official_motion, rtol=0, atol=1e-5)
    # The decoded frames reach the newest motion latents; the still portrait no longer fills them.
    assert not torch.equal(motion[:, -1], motion_latents(vae, pixels)[:, -1])


def test_the_refresh_decodes_within_the_placements_decoder_room(vae, refresh_pixels, refreshed, monkeypatch):
    clip = refresh_clip(12)
    whole_calls = refreshed(12)
    latents_per_call: list[int] = []
    decoder = vae.model.decoder
    forward = decoder.forward

    def counting(x, *args, **kwargs):
        latents_per_call.append(x.shape[2])
        return forward(x, *args, **kwargs)

    monkeypatch.setattr(decoder, "forward", counting)
    one_at_a_time = refreshed_sink(vae, refresh_pixels, clip, decoder_latents=1)
    assert latents_per_call and max(latents_per_call) == 1
    for ours, whole in zip(one_at_a_time, whole_calls):
        torch.testing.assert_close(ours, whole, rtol=0, atol=1e-5)


# --- text and audio --------------------------------------------------------------------


def test_prompt_states_encode_only_the_prompt(ckpt_dir, monkeypatch):
    encoder = load_text_encoder(ckpt_dir, device="cpu", dtype=torch.float32)
    asked: list[list[str]] = []
    real_encode = encoder.encode
    monkeypatch.setattr(encoder, "encode", lambda texts: asked.append(list(texts)) or real_encode(texts))
    states = prompt_states(encoder, "A doctor explains where to register.")
    assert asked == [["A doctor explains where to register."]]  # no negative prompt pass
    assert torch.equal(states, real_encode(["A doctor explains where to register."])[0])
    assert states.device.type == "cpu" and states.shape[1] == CONFIG_TINY.dit.text_dim


def test_audio_frames_follow_the_speech_and_are_silent_after_it(ckpt_dir, tmp_path):
    encoder = load_audio_encoder(ckpt_dir, device="cpu", dtype=torch.float32)
    samples = load_speech_16k(write_sine_wav(tmp_path / "s.wav", duration_s=1.0))
    frames = audio_frames(encoder, samples, 48)
    assert frames.shape == (25, CONFIG_TINY.audio.hidden_size, 48)
    # 1 s: T_a = 49, N30 = 29; frame k reads 30 Hz index round(1.2 k), so k <= 23 has speech.
    assert frames[..., :24].abs().amax(dim=(0, 1)).min() > 0
    assert (frames[..., 24:] == 0).all()
