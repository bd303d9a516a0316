"""The causal block sampler of Live Avatar (docs/model.md §6.4) and its streaming decode.

Generation, per job (conditioning comes ready from `conditioning.py`):

1. One sink prefill: the reference and motion latents fill the cond cache at t = 0.
   With a sink refresh (optional), a second prefill after clip 0 (`sample_blocks`).
2. Per clip r: ONE noise tensor (16, latent_frames_per_clip, h, w) is drawn
   from a `torch.Generator` seeded `seed + r`, always on the CPU in float32
   and then cast to the model's dtype and device, so a CPU run and a GPU run
   start from the same numbers. (The official script draws bf16 on a CUDA
   generator; its numbers differ from any CPU draw, docs/model.md §12.)
3. Per block b of the clip (3 latent frames, 12 video frames), K Euler
   steps: step k uses step-cache k ("timestep forcing", docs/model.md §0.2),
   `first_frame = 3·(r·B + b)`, the block's 12 audio frames, and
   `x ← x + (σ_{k+1} − σ_k)·v` computed in fp32 and stored in the model dtype,
   as the official loop does (a no-op round in fp32). The official loop runs
   all K steps of a block before the next block; the calls here run as a
   wavefront that batches independent calls, with the same inputs to every
   call (see `sample_blocks`).
4. The sink distance d of every denoising call is drawn from a dedicated
   `random.Random(seed)` with `randint(4, 30)`, so a seed reproduces a video
   (the official draw is unseeded, docs/model.md §2.9), or fixed by `SamplerOptions`.

Lip sync. The official single-GPU path drops the first 3 decoded frames and
muxes the audio from t = 0, so its picture runs 3 frames (120 ms) ahead of the
sound (docs/model.md §0.11). Here the VAE stream decoder is primed with motion latents
first, so every block decodes to exactly 12 frames that belong to the block's
12 audio frames, and nothing is dropped: the stream is 48·N frames and frame
k shows audio frame k from t = 0. `drop_first_frames=3` restores the official
offset for comparisons.

Blocks leave one at a time as they finish; `streaming.py` decodes them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice

import torch

from avatar_batch.render.image import PAD_MODES
from avatar_batch.render.liveavatar.conditioning import Conditioning
from avatar_batch.render.liveavatar.dit import BlockInputs, CausalS2VDiT, CondCache, StepCache, TokenGrid
from avatar_batch.render.liveavatar.limits import LATENT_FRAMES_PER_BLOCK, VIDEO_FRAMES_PER_BLOCK, ClipGeometry
from avatar_batch.render.liveavatar.schedule import Schedule

SINK_DISTANCE_RANGE = (4, 30)  # inclusive, the official randint bounds
LATENT_CHANNELS = 16
# The TPP path's stream decoder is primed with 7 motion latents (docs/model.md §5).
DEFAULT_PRIME_LATENTS = 7


@dataclass(frozen=True)
class SamplerOptions:
    """Choices of the Live Avatar renderer that are not part of `RenderSettings`.

    sink_distance: None draws d per denoising call from `random.Random(seed)`;
        an int in 4..30 fixes it for every call.
    drop_first_frames: frames dropped at the start of the video; 0 keeps the
        picture aligned with the sound, 3 reproduces the official 120 ms lead.
    pad_mode: "cover" fills the frame (scales the portrait up just enough);
        "black" reproduces the official black side bars (docs/model.md §0.6).
    decoder_prime_latents: motion latents fed to the stream decoder before the
        first block, so it starts from the portrait's context, as the TPP path does.
    """

    sink_distance: int | None = None
    drop_first_frames: int = 0
    pad_mode: str = "cover"
    decoder_prime_latents: int = DEFAULT_PRIME_LATENTS

    def __post_init__(self) -> None:
        low, high = SINK_DISTANCE_RANGE
        if self.sink_distance is not None and not low <= self.sink_distance <= high:
            raise ValueError(f"sink_distance must be {low}..{high} or None, got {self.sink_distance}")
        if self.drop_first_frames < 0:
            raise ValueError(f"drop_first_frames must be >= 0, got {self.drop_first_frames}")
        if self.pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {self.pad_mode!r}")
        if self.decoder_prime_latents < 1:
            raise ValueError(f"decoder_prime_latents must be >= 1, got {self.decoder_prime_latents}")

    def tag(self) -> str:
        """Short text for the renderer identity; empty for the defaults."""
        if self == SamplerOptions():
            return ""
        d = "rand" if self.sink_distance is None else str(self.sink_distance)
        return f"d{d}-drop{self.drop_first_frames}-{self.pad_mode}-prime{self.decoder_prime_latents}"


@dataclass(frozen=True)
class SamplingPlan:
    geometry: ClipGeometry
    schedule: Schedule
    seed: int


NoiseSource = Callable[[int], torch.Tensor]  # clip index -> (16, latent_frames_per_clip, h, w) fp32


def sink_distances(seed: int, fixed: int | None = None) -> Iterator[int]:
    """The sink distance of every denoising call, in call order (endless)."""
    rng = random.Random(seed)
    low, high = SINK_DISTANCE_RANGE
    while True:
        yield fixed if fixed is not None else rng.randint(low, high)


def seeded_noise(plan: SamplingPlan) -> NoiseSource:
    """Clip r's noise from a CPU generator seeded `seed + r`, fp32 (see step 2 above)."""
    g = plan.geometry
    shape = (LATENT_CHANNELS, g.latent_frames_per_clip, g.latent_height, g.latent_width)

    def draw(clip: int) -> torch.Tensor:
        generator = torch.Generator(device="cpu").manual_seed(plan.seed + clip)
        return torch.randn(shape, generator=generator, dtype=torch.float32)

    return draw


SinkRefresh = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""clip 0's latents (16, F, h, w) -> the new (reference (16, 1, h, w), motion (16, 19, h, w)) latents."""

LatentsSink = Callable[[torch.Tensor], None]
"""Sees each finished block's latents (16, 3, h, w), model dtype, on the device, in block
order, before they are decoded; it must not modify them (copy what it keeps)."""


def tapped(blocks: Iterator[torch.Tensor], sink: LatentsSink) -> Iterator[torch.Tensor]:
    """The blocks unchanged, each shown to `sink` first (quality comparisons across formats)."""
    for latents in blocks:
        sink(latents)
        yield latents


def sample_blocks(
    dit: CausalS2VDiT,
    cond: Conditioning,
    plan: SamplingPlan,
    distances: Iterator[int],
    noise: NoiseSource,
    max_batch: int | None = None,
    refresh: SinkRefresh | None = None,
) -> Iterator[torch.Tensor]:
    """Denoised latents (16, 3, h, w) of each block in order, in the model dtype.

    Calls run as a wavefront: call (block b, step k) needs only (b, k-1), its
    own latents, and (b-1, k), the last write to step-cache k, so the calls with
    equal b + k are independent and run as one batch of up to `max_batch`
    (default: the number of steps). Every call sees exactly the inputs of the
    plain block-by-block order, sink distances included, so `max_batch=1`
    gives the same latents one call at a time.

    `refresh` (the official online-decode sink refresh): once clip 0 is done,
    the sink is prefilled again with `refresh(clip 0's latents)` before any
    call of clip 1; the step caches and the RoPE positions carry on unchanged.
    The wavefront drains at that boundary, so clip 0 reads only the old sink.

    The caches are the job's (`CausalS2VDiT.job_caches`) until the generator finishes or closes."""
    geometry, schedule = plan.geometry, plan.schedule
    limit = schedule.num_steps if max_batch is None else max_batch
    if limit < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    # The attention window is one clip of latent frames, as in the official loop.
    caches = dit.job_caches(geometry.height_px, geometry.width_px, schedule.num_steps, geometry.latent_frames_per_clip)
    with caches as (cond_cache, step_caches):
        dit.prefill_sink(cond.ref_latent, cond.motion_latents, cond.context, cond_cache)
        total_blocks = geometry.num_clips * geometry.blocks_per_clip
        # Distances are drawn in the plain order (block-major, then step), whatever order the calls run in.
        drawn = list(islice(distances, total_blocks * schedule.num_steps))
        run = _Wavefront(dit, cond, plan, drawn, step_caches, cond_cache, limit)
        block_noise = _block_noise(noise, geometry, dit)
        if refresh is None or geometry.num_clips == 1:
            yield from run.blocks(range(total_blocks), block_noise)
            return
        first_clip = []
        for latents in run.blocks(range(geometry.blocks_per_clip), block_noise):
            first_clip.append(latents)
            yield latents
        ref_latent, motion = refresh(torch.cat(first_clip, dim=1))
        del first_clip
        dit.prefill_sink(ref_latent, motion, cond.context, cond_cache)
        yield from run.blocks(range(geometry.blocks_per_clip, total_blocks), block_noise)


@dataclass
class _Wavefront:
    """The denoising calls of a run of consecutive blocks, batched by wave (see `sample_blocks`)."""

    dit: CausalS2VDiT
    cond: Conditioning
    plan: SamplingPlan
    drawn: list[int]  # the sink distance of every call, plain order
    step_caches: list[StepCache]
    cond_cache: CondCache
    limit: int

    def blocks(self, block_range: range, block_noise: Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
        dit, schedule, geometry = self.dit, self.plan.schedule, self.plan.geometry
        num_steps, first = schedule.num_steps, block_range.start
        latents: dict[int, torch.Tensor] = {}  # blocks in flight: x at their next step
        for wave in range(first, block_range.stop + num_steps - 1):
            calls = [(wave - step, step) for step in range(num_steps) if wave - step in block_range]
            for block, step in calls:
                if step == 0:
                    latents[block] = next(block_noise)
            groups = list(_batches(calls, self.step_caches, geometry, self.limit))
            # One pass over the layers for the whole wave: streamed layers are copied once.
            batches = [([self._inputs(latents, block, step) for block, step in g], self._caches(g)) for g in groups]
            for group, velocities in zip(groups, dit.denoise_wave(batches, self.cond_cache)):
                for (block, step), velocity in zip(group, velocities):
                    # x <- x + (sigma_{k+1} - sigma_k) v in fp32, stored in the model dtype (official loop).
                    step_size = schedule.step_size(step)
                    latents[block] = (latents[block].float() + step_size * velocity.float()).to(dit.dtype)
            finished = wave - (num_steps - 1)
            if finished >= first:
                yield latents.pop(finished)

    def _inputs(self, latents: dict[int, torch.Tensor], block: int, step: int) -> BlockInputs:
        num_steps = self.plan.schedule.num_steps
        return BlockInputs(
            latents[block],
            self.plan.schedule.timesteps[step],
            self.cond.audio[..., VIDEO_FRAMES_PER_BLOCK * block : VIDEO_FRAMES_PER_BLOCK * (block + 1)],
            LATENT_FRAMES_PER_BLOCK * block,
            self.drawn[block * num_steps + step],
        )

    def _caches(self, group: list[tuple[int, int]]) -> list[StepCache]:
        return [self.step_caches[step] for _, step in group]


def _block_noise(noise: NoiseSource, geometry: ClipGeometry, dit: CausalS2VDiT) -> Iterator[torch.Tensor]:
    """Each block's starting latents, in block order: its slice of its clip's single noise draw."""
    for clip in range(geometry.num_clips):
        clip_noise = noise(clip).to(device=dit.device, dtype=dit.dtype)  # (16, F_clip, h, w)
        for block in range(geometry.blocks_per_clip):
            yield clip_noise[:, LATENT_FRAMES_PER_BLOCK * block : LATENT_FRAMES_PER_BLOCK * (block + 1)]


def _batches(
    calls: list[tuple[int, int]], step_caches: list[StepCache], geometry: ClipGeometry, limit: int
) -> Iterator[list[tuple[int, int]]]:
    """Split one wavefront's (block, step) calls into batches of at most `limit`
    that read equally long cache windows (they differ only while the rings fill)."""
    tokens = LATENT_FRAMES_PER_BLOCK * TokenGrid.from_pixels(geometry.height_px, geometry.width_px).tokens_per_frame
    by_window: dict[int, list[tuple[int, int]]] = {}
    for block, step in calls:
        _, window_end = step_caches[step].window(LATENT_FRAMES_PER_BLOCK * block, tokens)
        by_window.setdefault(window_end, []).append((block, step))
    for group in by_window.values():
        for start in range(0, len(group), limit):
            yield group[start : start + limit]
