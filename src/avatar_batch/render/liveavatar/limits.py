"""Limits of the released model, checked before any GPU work (docs/model.md §0, §6.2).

Each violated limit is a UsageError that says which setting to change, because
the alternative is a crash deep inside the sink prefill or the RoPE table
after minutes of loading. `check_run_settings` runs when the renderer opens,
before any job; `check_geometry` runs per job, once the portrait and the
speech fix the video's size and length. These limits live here, not in the
tool-wide settings, because they are this model's: another renderer has others.
"""

from __future__ import annotations

from dataclasses import dataclass

from avatar_batch.core.errors import UsageError
from avatar_batch.core.records import RenderSettings
from avatar_batch.render.geometry import SIZE_MULTIPLE_PX

LATENT_FRAMES_PER_BLOCK = 3
VIDEO_FRAMES_PER_BLOCK = 12  # 3 latents x 4 (the VAE's temporal stride)
VAE_SPATIAL_STRIDE = 8
PATCH_PX = 16  # VAE stride 8 x DiT patch 2
ROPE_TIME_POSITIONS = 45_000
# The reference is placed up to 30 latent frames ahead of the current block.
MAX_SINK_LEAD = 30
# The sink cache holds 2800 tokens and the sink needs 2.5 tokens per
# (16x16 px) cell, so H*W <= 2800 / 2.5 * 256 = 286,720 px (docs/model.md §0.7).
MAX_MODEL_AREA_PX = 286_720
# The DMD LoRA was distilled for at most 4 steps, and the sampler keeps one KV cache per step.
MAX_SAMPLE_STEPS = 4


@dataclass(frozen=True)
class ClipGeometry:
    """Pixel and latent sizes of one job's video, in the model's units."""

    height_px: int
    width_px: int
    frames_per_clip: int
    num_clips: int

    @property
    def latent_height(self) -> int:
        return self.height_px // VAE_SPATIAL_STRIDE

    @property
    def latent_width(self) -> int:
        return self.width_px // VAE_SPATIAL_STRIDE

    @property
    def tokens_per_latent_frame(self) -> int:
        return (self.height_px // PATCH_PX) * (self.width_px // PATCH_PX)

    @property
    def blocks_per_clip(self) -> int:
        return self.frames_per_clip // VIDEO_FRAMES_PER_BLOCK

    @property
    def latent_frames_per_clip(self) -> int:
        return self.blocks_per_clip * LATENT_FRAMES_PER_BLOCK

    @property
    def total_latent_frames(self) -> int:
        return self.num_clips * self.latent_frames_per_clip

    @property
    def num_video_frames(self) -> int:
        return self.num_clips * self.frames_per_clip


def check_sample_steps(sample_steps: int) -> None:
    if not 1 <= sample_steps <= MAX_SAMPLE_STEPS:
        raise UsageError(
            f"--steps {sample_steps} is outside 1..{MAX_SAMPLE_STEPS} (the model keeps one KV cache per step); "
            "use --steps 4 or a --preset"
        )


def check_frames_per_clip(frames_per_clip: int) -> None:
    if frames_per_clip <= 0 or frames_per_clip % VIDEO_FRAMES_PER_BLOCK:
        raise UsageError(
            f"frames per clip {frames_per_clip} is not a positive multiple of {VIDEO_FRAMES_PER_BLOCK} "
            f"(the model makes {VIDEO_FRAMES_PER_BLOCK} frames per block); use a --preset"
        )


def check_run_settings(settings: RenderSettings) -> None:
    """The run's settings against the model's limits, before any job starts."""
    check_sample_steps(settings.sample_steps)
    check_frames_per_clip(settings.frames_per_clip)


def check_geometry(geometry: ClipGeometry, sample_steps: int) -> None:
    h, w = geometry.height_px, geometry.width_px
    if h % SIZE_MULTIPLE_PX or w % SIZE_MULTIPLE_PX:
        raise UsageError(f"video size {w}x{h} px is not a multiple of {SIZE_MULTIPLE_PX}; use a preset size")
    if h * w > MAX_MODEL_AREA_PX:
        raise UsageError(
            f"video size {w}x{h} = {h * w:,} px exceeds the model's {MAX_MODEL_AREA_PX:,} px "
            "(its 2800-token sink cache); use --preset high (704*384) or smaller"
        )
    check_frames_per_clip(geometry.frames_per_clip)
    check_sample_steps(sample_steps)
    last_position = geometry.total_latent_frames + MAX_SINK_LEAD
    if last_position >= ROPE_TIME_POSITIONS:
        max_s = (ROPE_TIME_POSITIONS - MAX_SINK_LEAD) // LATENT_FRAMES_PER_BLOCK * VIDEO_FRAMES_PER_BLOCK / 25
        raise UsageError(
            f"{geometry.num_clips} clips need {geometry.total_latent_frames:,} latent frames, past the model's "
            f"position table ({ROPE_TIME_POSITIONS:,}); split the answer (limit about {max_s:,.0f} s) or cap --num-clip"
        )
