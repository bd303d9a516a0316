"""Everything the sampler is conditioned on, computed once per job (docs/model.md §2.8, §3, §4, §6.2).

* Text: umT5 on the rendered prompt only. The official pipeline also encodes
  a negative prompt that the causal sampler never reads (docs/model.md §0.10); we skip it.
* Audio: wav2vec2 hidden states at 50 Hz, linearly resampled to 30 Hz and
  picked per 25 fps video frame (docs/model.md §3.3), zeros past the end of the speech.
  The clip count `floor(N30 / 57.6) + 1` follows from the sample count alone,
  so the video geometry is known before any model runs.
* Reference latent: the 2nd latent of the VAE encoding of the portrait
  repeated 5 times (the "static video" latent, docs/model.md §0.5).
* Motion latents: the official path encodes the portrait repeated 365 times
  (92 latents) and the DiT reads the newest 19. The causal VAE encoder has a
  finite temporal receptive field, so on a still picture its latents reach an
  exact fixed point (bit-identical from latent 28 on, for this architecture),
  and the newest 19 of the 92 are 19 copies of that fixed point. We encode a
  shorter probe (`MOTION_PROBE_FRAMES`), check that its last latents are
  bit-identical, and repeat the last one; if they are not, we encode all 365
  frames. The 73-frame variant of the multi-GPU path is NOT used: its 19
  latents include the start-up transient, a different DiT input.

* Sink refresh (optional, `sink_refresh`; docs/model.md §2.9.3, the official
  `--enable_online_decode` path): after clip 0 the reference latent becomes
  clip 0's first latent frame, and the motion latents become the newest 19 of
  the VAE encoding of the official 365-frame "last frames" buffer: 320 copies
  of the portrait, then the last 45 frames of clip 0 as the official full
  decode of [92 still-video latents, clip 0] gives them (its first 3 frames of
  the clip dropped). `refreshed_sink` computes both, once per job, from
  `refresh_frames` (a stream decoder primed with the 92 latents, so only the
  clip's frames are ever held) and `refresh_motion_latents` (the re-encode).

The results are a frozen `Conditioning`; nothing here samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from avatar_batch.render.image import fit_frame, load_rgb
from avatar_batch.render.liveavatar.audio_encoder import (
    num_30hz_frames,
    num_audio_frames,
    num_clips,
    per_frame_features,
    resample_to_30hz,
)
from avatar_batch.render.liveavatar.vae import CHUNK_LATENTS

REFERENCE_REPEATS = 5  # frames of the "static video" whose 2nd latent is the reference
REFERENCE_LATENT_INDEX = 1
OFFICIAL_MOTION_FRAMES = 365  # 5 x 73 copies of the portrait, 92 latents
DIT_MOTION_LATENTS = 19  # what FramePack reads (16 + 2 + 1)
FRAMES_PER_LATENT = 4
STEADY_CHECK_LATENTS = 4  # trailing latents that must be bit-identical
MOTION_PROBE_FRAMES = 4 * 36 + 1  # 37 latents: the fixed point (from 28) plus margin
OFFICIAL_MOTION_LATENTS = 92  # latents of the 365-frame still video
MOTION_VIDEO_FRAMES = 73  # the official `motion_frames`: most decoded frames kept per refresh
REFRESH_DROPPED_FRAMES = 3  # the official online decode drops clip 0's first 3 frames


@dataclass(frozen=True)
class Conditioning:
    """Per-job inputs of the sampler, on the DiT's device."""

    context: torch.Tensor  # (1, text_len, dim) embedded prompt, DiT dtype
    audio: torch.Tensor  # (25, audio_dim, num_video_frames) per-frame wav2vec2 states, DiT dtype
    ref_latent: torch.Tensor  # (16, 1, h, w) fp32
    motion_latents: torch.Tensor  # (16, 19, h, w) fp32, oldest first
    portrait: torch.Tensor | None = None  # (3, H, W) fp32 in [-1, 1] on the CPU, kept only for a sink refresh


# --- geometry from the speech ----------------------------------------------------------


def clips_for_speech(num_samples_16k: int, frames_per_clip: int, cap: int | None = None) -> int:
    """Clips the speech needs (docs/model.md §3.3), at most `cap` (the `num_clip` setting)."""
    needed = num_clips(num_30hz_frames(num_audio_frames(num_samples_16k)), frames_per_clip)
    return needed if cap is None else max(1, min(cap, needed))


# --- text and audio ----------------------------------------------------------------------


def prompt_states(text_encoder, prompt: str) -> torch.Tensor:
    """(L, 4096) umT5 states of the prompt alone (no negative prompt: the DMD sampler has no
    guidance), on the host: the DiT's `embed_text` turns them into the job's context."""
    return text_encoder.encode([prompt])[0].cpu()


def audio_frames(audio_encoder, samples_16k: np.ndarray, num_video_frames: int) -> torch.Tensor:
    """(25, audio_dim, num_video_frames) fp32: one wav2vec2 column per 25 fps video frame."""
    states = audio_encoder.features(samples_16k)  # (25, T_a, audio_dim) at 50 Hz
    return per_frame_features(resample_to_30hz(states), num_video_frames)


# --- the portrait --------------------------------------------------------------------------


def portrait_pixels(image_path: Path, height_px: int, width_px: int, pad_mode: str) -> torch.Tensor:
    """(3, H, W) fp32 in [-1, 1]: the portrait fitted to the video size (docs/model.md §6.2.2)."""
    frame = fit_frame(load_rgb(image_path), height_px, width_px, pad_mode=pad_mode)  # (H, W, 3) uint8
    pixels = torch.from_numpy(frame).permute(2, 0, 1).float() / 255.0
    return pixels * 2.0 - 1.0


def _still_video(pixels: torch.Tensor, num_frames: int) -> torch.Tensor:
    """(1, 3, num_frames, H, W) view repeating one picture."""
    return pixels[None, :, None].expand(1, -1, num_frames, -1, -1)


def reference_latent(vae, pixels: torch.Tensor) -> torch.Tensor:
    """(16, 1, h, w): latent 1 of the portrait repeated 5 times."""
    latents = vae.encode(_still_video(pixels, REFERENCE_REPEATS))  # (1, 16, 2, h, w)
    return latents[0, :, REFERENCE_LATENT_INDEX : REFERENCE_LATENT_INDEX + 1].float()


def motion_latents(vae, pixels: torch.Tensor) -> torch.Tensor:
    """(16, 19, h, w): the newest 19 latents of the 365-frame still video (see module doc)."""
    return still_video_latents(vae, pixels, DIT_MOTION_LATENTS)


def still_video_latents(vae, pixels: torch.Tensor, newest: int = OFFICIAL_MOTION_LATENTS) -> torch.Tensor:
    """(16, newest, h, w) fp32: the newest latents of the 365-frame still video, from
    the short probe when its tail has reached the fixed point (see module doc)."""
    probe = vae.encode(_still_video(pixels, MOTION_PROBE_FRAMES))[0]  # (16, 37, h, w)
    tail = probe[:, -STEADY_CHECK_LATENTS:]
    if bool((tail == tail[:, -1:]).all()):
        steady = probe[:, -1:].expand(-1, OFFICIAL_MOTION_LATENTS - probe.shape[1], -1, -1)
        full = torch.cat([probe, steady], dim=1)
    else:
        full = vae.encode(_still_video(pixels, OFFICIAL_MOTION_FRAMES))[0]  # (16, 92, h, w)
    return full[:, -newest:].float().contiguous()


# --- the sink refresh ------------------------------------------------------------------------


def refreshed_sink(
    vae, pixels: torch.Tensor, clip_latents: torch.Tensor, decoder_latents: int = CHUNK_LATENTS
) -> tuple[torch.Tensor, torch.Tensor]:
    """The sink after clip 0 (module doc): (reference (16, 1, h, w), motion (16, 19, h, w)), fp32.

    pixels: the portrait (3, H, W); clip_latents: clip 0's denoised latents (16, F, h, w);
    decoder_latents: most latents per decoder call (the placement's reservation)."""
    frames = refresh_frames(vae, pixels, clip_latents, decoder_latents)
    return clip_latents[:, :1].float().contiguous(), refresh_motion_latents(vae, pixels, frames)


def refresh_frames(
    vae, pixels: torch.Tensor, clip_latents: torch.Tensor, decoder_latents: int = CHUNK_LATENTS
) -> torch.Tensor:
    """(1, 3, 4F - 3, H, W) fp32 on the CPU: clip 0's frames as the official online decode keeps
    them (decoded behind the 92 still-video latents, its first 3 frames dropped)."""
    frames_per_clip = FRAMES_PER_LATENT * clip_latents.shape[1]
    # A stream decoder primed with the still latents gives the clip's frames of the official
    # one-shot decode without holding the 365 frames before them on the device. The refresh
    # runs mid-sampling, beside the caches: its calls stay within the placement's decoder room.
    decoder = vae.stream_decoder(decoder_latents)
    decoder.prime(still_video_latents(vae, pixels)[None])
    clip_frames = decoder.decode_chunk(clip_latents.float()[None])[:, :, -frames_per_clip:]
    return clip_frames[:, :, REFRESH_DROPPED_FRAMES:].cpu()


def refresh_motion_latents(vae, pixels: torch.Tensor, clip_frames: torch.Tensor) -> torch.Tensor:
    """(16, 19, h, w) fp32: the newest 19 latents of the official 365-frame "last frames" buffer,
    the portrait followed by the newest (at most 73) of `clip_frames` (1, 3, n, H, W)."""
    kept = min(MOTION_VIDEO_FRAMES, clip_frames.shape[2])
    # Assembled on the host: `encode` moves it to the device in the VAE's dtype.
    portrait = _still_video(pixels.float().cpu(), OFFICIAL_MOTION_FRAMES - kept)
    last_frames = torch.cat([portrait, clip_frames[:, :, -kept:].cpu()], dim=2)  # (1, 3, 365, H, W)
    return vae.encode(last_frames)[0, :, -DIT_MOTION_LATENTS:].float().contiguous()
