"""The causal speech-to-video DiT of Live Avatar (Wan2.2-S2V-14B + causal inference), docs/model.md §2.

Parameter names equal the official checkpoint keys, so the released shards
load with `strict=True`. There are no buffers: RoPE multipliers are computed
per call for the positions in use.

Two entry points, both under `torch.no_grad()`:

* `prefill_sink(ref_latent, motion_latents, context, cond_cache)` runs the
  reference + FramePack motion tokens through every layer at t = 0 (full
  attention among themselves, text cross-attention, no audio) and stores each
  layer's un-rotated keys and values in `cond_cache`, with each layer's text
  cross-attention keys and values. Its output is unused.
* `denoise_block(block, step_cache, cond_cache)` runs the noisy tokens of one
  block at one denoising step. Each layer writes its rotated keys and values
  into `step_cache` (the cache of that step) and attends to the written ring
  slots plus the sink keys, re-rotated with the reference placed at
  `30 + max(0, f0 - (30 - sink_distance))` (docs/model.md §2.9). Returns the flow
  velocity v = noise - x0 for the block's latents. `denoise_blocks` runs
  several such calls, each with its own step cache, as one batch.

Numerics follow the official bf16 run (autocast semantics), and with fp32
weights reproduce the official fp32 outputs; see `DiTNumerics` for the two
quirks kept by default. This module knows nothing of files, schedules or
sampling loops.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from avatar_batch.render.liveavatar.config import DiTConfig
from avatar_batch.render.liveavatar.dit.attention import sdpa
from avatar_batch.render.liveavatar.dit.audio import (
    AUDIO_FRAMES_PER_LATENT,
    AudioInjector,
    CausalAudioEncoder,
)
from avatar_batch.render.liveavatar.dit.block import DiTBlock, SelfAttend
from avatar_batch.render.liveavatar.dit.cache import (
    DEFAULT_WINDOW_LATENT_FRAMES,
    CachePolicy,
    CacheShape,
    CondCache,
    StepCache,
    TokenGrid,
    allocate_cond_cache,
    allocate_step_caches,
    plan_cache_passes,
)
from avatar_batch.render.liveavatar.dit.embeddings import Head, linear_fp32, timestep_sinusoid, unpatchify
from avatar_batch.render.liveavatar.dit.framepack import FramePacker, motion_positions
from avatar_batch.render.liveavatar.dit.numerics import PARITY, DiTNumerics
from avatar_batch.render.liveavatar.dit.rings import LayerRing, run_layers
from avatar_batch.render.liveavatar.dit.rope import (
    RopeMultipliers,
    apply_rope,
    block_positions,
    grid_positions,
    rope_multipliers,
)
from avatar_batch.render.liveavatar.dit.upload import to_device
from avatar_batch.render.liveavatar.dit.wave_graphs import WaveGraphs, layout

# The sink's reference latent sits at time position 30 at prefill (docs/model.md §2.5).
SINK_REF_TIME = 30
LATENT_FRAMES_PER_BLOCK = 3
# trainable_cond_mask rows: which kind of token (docs/model.md §2.2).
NOISY, REFERENCE, MOTION = 0, 1, 2

# Values the released model is built with and this implementation supports;
# the official loader ignores several of them in config.json anyway (docs/model.md §12).
_REQUIRED = {
    "model_type": "s2v",
    "patch_size": (1, 2, 2),
    "window_size": (-1, -1),
    "qk_norm": True,
    "cross_attn_norm": True,
    "enable_adain": True,
    "adain_mode": "attn_norm",
    "zero_timestep": True,
    "enable_motioner": False,
    "enable_tsm": False,
    "trainable_token_pos_emb": False,
    "enable_framepack": True,
    "framepack_drop_mode": "padd",
}


@dataclass(frozen=True)
class BlockInputs:
    """One block at one denoising step, as the sampler sees it."""

    latents: torch.Tensor  # (C, F, h, w) x_t of the block, F = 3 latent frames
    timestep: float  # t_i in 0..1000, shared by the block's frames
    audio: torch.Tensor  # (25, audio_dim, 4F) wav2vec2 hidden states of the block's video frames
    first_frame: int  # f0: global latent-frame index of the block's first frame
    sink_distance: int  # d: the reference sits d latent frames ahead once f0 >= 30 - d
    cond_latents: torch.Tensor | None = None  # (C, F, h, w) pose latents; None = zeros (audio-only run)


def check_supported(config: DiTConfig) -> None:
    bad = [f"{k}={getattr(config, k)!r} (need {v!r})" for k, v in _REQUIRED.items() if getattr(config, k) != v]
    layers = config.audio_inject_layers
    if len(set(layers)) != len(layers) or any(not 0 <= i < config.num_layers for i in layers):
        bad.append(f"audio_inject_layers={layers!r} (need distinct layer indices below num_layers={config.num_layers})")
    if config.dim % config.num_heads or (config.dim // config.num_heads) % 2:
        bad.append(f"dim={config.dim} with num_heads={config.num_heads} (need an even head dim)")
    if bad:
        raise ValueError("unsupported DiT config: " + "; ".join(bad))


def rolled_reference_time(first_frame: int, sink_distance: int) -> int:
    """Time position of the sink reference for a block starting at latent frame `first_frame`."""
    if sink_distance < 0:
        raise ValueError(f"sink_distance must be >= 0, got {sink_distance}")
    return SINK_REF_TIME + max(0, first_frame - (SINK_REF_TIME - sink_distance))


@dataclass
class _Batch:
    """One batch of a wave between the layers (`CausalS2VDiT.denoise_wave`)."""

    x: torch.Tensor  # (1, B * tokens, dim) the tokens entering the first layer
    e: torch.Tensor
    e0: torch.Tensor
    audio_global: torch.Tensor
    audio_local: torch.Tensor
    rope: RopeMultipliers  # of the batch's noisy tokens, applied inside the blocks
    sink_ropes: list[RopeMultipliers]  # the sink's, per call (its reference time rolls with the block)
    calls: list[tuple[StepCache, int]]  # (step cache, first latent frame) per block
    windows: list[tuple[int, int]]  # per block: its ring slot and the ring tokens it reads (`StepCache.window`)
    grid: TokenGrid
    frames: int
    tokens: int  # per block

    def layer_inputs(self) -> list[torch.Tensor]:
        """The tensors the layers read besides the caches and weights (`with_layer_inputs` inverts)."""
        ropes = [self.rope, *self.sink_ropes]
        return [self.x, self.e0, self.audio_global, self.audio_local] + [t for r in ropes for t in (r.cos, r.sin)]

    def with_layer_inputs(self, tensors: Sequence[torch.Tensor]) -> _Batch:
        x, e0, audio_global, audio_local, *rope_parts = tensors
        ropes = [RopeMultipliers(cos, sin) for cos, sin in zip(rope_parts[::2], rope_parts[1::2])]
        return replace(
            self, x=x, e0=e0, audio_global=audio_global, audio_local=audio_local, rope=ropes[0], sink_ropes=ropes[1:]
        )

    def signature(self) -> tuple[object, ...]:
        """What the layers' kernels depend on besides tensor contents: each call's cache,
        ring slot and window, and the inputs' layouts (`wave_graphs.py`)."""
        caches = tuple(id(cache) for cache, _ in self.calls)
        return caches, tuple(self.windows), tuple(layout(t) for t in self.layer_inputs())


class CausalS2VDiT(nn.Module):
    def __init__(self, config: DiTConfig, numerics: DiTNumerics = PARITY):
        super().__init__()
        check_supported(config)
        self.config = config
        self.numerics = numerics
        dim, patch = config.dim, config.patch_size
        self.patch_embedding = nn.Conv3d(config.in_dim, dim, kernel_size=patch, stride=patch)
        self.text_embedding = nn.Sequential(
            nn.Linear(config.text_dim, dim), nn.GELU(approximate="tanh"), nn.Linear(dim, dim)
        )
        self.time_embedding = nn.Sequential(nn.Linear(config.freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        self.blocks = nn.ModuleList(
            DiTBlock(dim, config.ffn_dim, config.num_heads, config.eps, numerics) for _ in range(config.num_layers)
        )
        self.head = Head(dim, config.out_dim, patch, config.eps)
        self.cond_encoder = (
            nn.Conv3d(config.cond_dim, dim, kernel_size=patch, stride=patch) if config.cond_dim > 0 else None
        )
        self.casual_audio_encoder = CausalAudioEncoder(config.audio_dim, dim, config.num_audio_token)
        self.audio_injector = AudioInjector(dim, config.num_heads, len(config.audio_inject_layers), eps=1e-6)
        self.trainable_cond_mask = nn.Embedding(3, dim)
        self.frame_packer = FramePacker(config.in_dim, dim, use_newest=config.add_last_motion)
        self._injector_of_layer = {layer: i for i, layer in enumerate(config.audio_inject_layers)}
        # RoPE of the sink (prefill and every denoising call; the blocks rotate their own
        # tokens); `dit.compiled.compile_blocks` swaps in a fused version. The attention
        # closures that call it read caches indexed by Python ints, so they always run
        # outside compiled graphs (`torch.compiler.disable`).
        self.rotate = apply_rope
        # Placement (issue 11), set by `dit.placed.place_dit`: blocks streamed from host
        # memory through a ring of device slots, and how the caches are stored.
        self.weight_ring: LayerRing | None = None
        self.cache_policy = CachePolicy()
        # CUDA graphs of the layer pass (`dit/wave_graphs.py`), set by the runner when
        # everything is resident; the caches of the last size are then kept for the next
        # job (`job_caches`), so the graphs, which read them where they are, outlive jobs.
        self.wave_graphs: WaveGraphs | None = None
        self._kept_caches: dict[tuple[int, ...], tuple[CondCache, list[StepCache]]] = {}

    # --- properties and cache allocation ------------------------------------------

    @property
    def dtype(self) -> torch.dtype:
        return self.patch_embedding.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.patch_embedding.weight.device

    def cache_shape(self) -> CacheShape:
        c = self.config
        return CacheShape(c.num_layers, c.num_heads, c.head_dim, self.dtype, self.device)

    def new_cond_cache(self, height_px: int, width_px: int) -> CondCache:
        return allocate_cond_cache(self.cache_shape(), TokenGrid.from_pixels(height_px, width_px), self.cache_policy)

    def new_step_caches(
        self, height_px: int, width_px: int, num_steps: int, window_latent_frames: int = DEFAULT_WINDOW_LATENT_FRAMES
    ) -> list[StepCache]:
        grid = TokenGrid.from_pixels(height_px, width_px)
        return allocate_step_caches(self.cache_shape(), grid, num_steps, window_latent_frames, self.cache_policy)

    @contextmanager
    def job_caches(
        self, height_px: int, width_px: int, num_steps: int, window_latent_frames: int = DEFAULT_WINDOW_LATENT_FRAMES
    ) -> Iterator[tuple[CondCache, list[StepCache]]]:
        """A job's cond cache and step caches, empty. With CUDA graphs on, the last job's
        caches of the same size are handed out again (never to two jobs at once) and kept after."""
        key = (height_px, width_px, num_steps, window_latent_frames)
        kept = self._kept_caches.pop(key, None) if self.wave_graphs is not None else None
        if kept is None:
            if self.wave_graphs is not None:  # drop the caches of another size, and the graphs holding them
                self._kept_caches.clear()
                self.wave_graphs.clear()
            cond = self.new_cond_cache(height_px, width_px)
            kept = cond, self.new_step_caches(height_px, width_px, num_steps, window_latent_frames)
        else:
            kept[0].reset()
            for step_cache in kept[1]:
                step_cache.reset()
        try:
            yield kept
        finally:  # a job's frames are closed once the last is taken, before its sampler returns
            if self.wave_graphs is not None:
                self._kept_caches = {key: kept}  # one size only: the memory of one job's caches

    # --- entry points -------------------------------------------------------------

    @torch.no_grad()
    def embed_text(self, text_states: torch.Tensor) -> torch.Tensor:
        """T5 output (L, text_dim), L <= text_len real tokens -> context (1, text_len, dim).

        Zero rows pad to text_len; they become non-zero vectors and are attended to (no mask)."""
        length, width = text_states.shape
        if length > self.config.text_len or width != self.config.text_dim:
            limit = (self.config.text_len, self.config.text_dim)
            raise ValueError(f"text states {tuple(text_states.shape)} do not fit {limit} (rows, width)")
        padded = text_states.new_zeros(self.config.text_len, width)
        padded[:length] = text_states
        return self.text_embedding(padded[None].to(device=self.device, dtype=self.dtype))

    @torch.no_grad()
    def prefill_sink(
        self, ref_latent: torch.Tensor, motion_latents: torch.Tensor, context: torch.Tensor, cond_cache: CondCache
    ) -> None:
        """ref_latent (C, 1, h, w); motion_latents (C, T, h, w), oldest first (the last 19 are used);
        context (1, text_len, dim) from `embed_text`, whose per-layer keys and values are kept too."""
        dtype, mask = self.dtype, self.trainable_cond_mask.weight
        _, _, h, w = ref_latent.shape
        grid = TokenGrid(h, w)
        ref = self._patchify(self.patch_embedding, ref_latent[None]) + mask[REFERENCE]
        motion = self.frame_packer(motion_latents.to(device=self.device, dtype=dtype)) + mask[MOTION]
        x = torch.cat([ref, motion], dim=1)  # (1, 2.5 * tokens per frame, dim)
        positions = torch.cat(
            [grid_positions([SINK_REF_TIME], range(grid.height), range(grid.width)), motion_positions(h, w)]
        )
        rope = self._rope(positions)
        _, _, e0_zero = self._time_conditioning(0.0, LATENT_FRAMES_PER_BLOCK)
        for layer in self._layer_pass(plan_cache_passes([], 0, cond_cache, prefill=True)):
            block: DiTBlock = self.blocks[layer]  # type: ignore[assignment]  # ModuleList items are Modules
            cond_cache.keep_text(layer, block.text_keys_values(context))
            x = block(x, e0_zero[:1], cond_cache.text[layer], self._prefill_attend(layer, rope, cond_cache))
        cond_cache.length_tokens = x.shape[1]
        cond_cache.positions = positions
        cond_cache.ref_tokens = ref.shape[1]

    @torch.no_grad()
    def denoise_block(self, block: BlockInputs, step_cache: StepCache, cond_cache: CondCache) -> torch.Tensor:
        """Flow velocity (C, F, h, w) in the model dtype for `block` at the step owning `step_cache`."""
        return self.denoise_blocks([block], [step_cache], cond_cache)[0]

    @torch.no_grad()
    def denoise_blocks(
        self, blocks: Sequence[BlockInputs], step_caches: Sequence[StepCache], cond_cache: CondCache
    ) -> torch.Tensor:
        """Velocities (B, C, F, h, w) of B independent denoising calls run as one batch.

        Call i denoises `blocks[i]` at the step owning `step_caches[i]`; the caches
        must be distinct (a call writes its block into its cache) and every call
        must read the same number of ring slots. The sampler batches the calls of
        one anti-diagonal of (block, step): each depends only on the previous
        diagonal, so batching changes no result, and B-times larger matrix
        products use the GPU better than B separate calls."""
        return self.denoise_wave([(blocks, step_caches)], cond_cache)[0]

    @torch.no_grad()
    def denoise_wave(
        self, batches: Sequence[tuple[Sequence[BlockInputs], Sequence[StepCache]]], cond_cache: CondCache
    ) -> list[torch.Tensor]:
        """Velocities of several batches (as `denoise_blocks`) in ONE pass over the layers.

        A wave's calls read cache windows of different lengths while the rings fill,
        so they form several batches; each layer runs every batch before the next
        layer, so a streamed layer (and a streamed cache layer) is copied once per
        wave instead of once per batch: 15 passes instead of 24 for 3 clips of 4
        steps. The batches are independent (no two share a step cache), so each
        gets exactly the numbers `denoise_blocks` gives it alone."""
        caches = [cache for _, batch_caches in batches for cache in batch_caches]
        if len({id(c) for c in caches}) != len(caches):
            raise ValueError("the batches of one wave need distinct step caches")
        prepared = [self._prepared(blocks, step_caches, cond_cache) for blocks, step_caches in batches]
        calls = [call for batch in prepared for call in batch.calls]
        rings = plan_cache_passes(calls, prepared[0].tokens if prepared else 0, cond_cache)
        if self.wave_graphs is None or rings or self.weight_ring is not None:
            outputs = self._layers(prepared, cond_cache, rings)
        else:  # everything resident: the pass can replay as a CUDA graph
            outputs = self._graphed_layers(prepared, cond_cache)
        return [self._velocities(replace(batch, x=x)) for batch, x in zip(prepared, outputs)]

    def _layers(self, prepared: Sequence[_Batch], cond_cache: CondCache, rings: list) -> list[torch.Tensor]:
        """Each batch's tokens after every layer, each layer writing the blocks into their step caches;
        audio after the injection layers."""
        xs = [batch.x for batch in prepared]
        for layer in self._layer_pass(rings):
            for i, batch in enumerate(prepared):
                attend = self._denoise_attention(batch, layer, cond_cache)
                xs[i] = self.blocks[layer](xs[i], batch.e0, cond_cache.text[layer], attend, batch.rope)
                if layer in self._injector_of_layer:
                    xs[i] = self.audio_injector.inject(
                        self._injector_of_layer[layer], xs[i], batch.audio_global, batch.audio_local
                    )
        return xs

    def _graphed_layers(self, prepared: Sequence[_Batch], cond_cache: CondCache) -> list[torch.Tensor]:
        """`_layers` through `self.wave_graphs`: the same kernels, replayed once the wave's signature recurs."""
        assert self.wave_graphs is not None
        counts = [len(batch.layer_inputs()) for batch in prepared]
        starts = [sum(counts[:i]) for i in range(len(counts))]
        # The sink's keys and values and the text's are written in place (`CondCache.keep_text`).
        key = (tuple(batch.signature() for batch in prepared), id(cond_cache), cond_cache.length_tokens)
        owners = [cond_cache, *(cache for batch in prepared for cache, _ in batch.calls)]

        def body(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
            batches = [b.with_layer_inputs(tensors[s : s + n]) for b, s, n in zip(prepared, starts, counts)]
            return self._layers(batches, cond_cache, [])

        inputs = [t for batch in prepared for t in batch.layer_inputs()]
        return self.wave_graphs.run(key, owners, inputs, body)

    def _prepared(
        self, blocks: Sequence[BlockInputs], step_caches: Sequence[StepCache], cond_cache: CondCache
    ) -> _Batch:
        """One batch's inputs to the layers: checked, tokenised, modulated, rotated."""
        count = len(blocks)
        if count == 0 or count != len(step_caches) or len({id(c) for c in step_caches}) != count:
            raise ValueError("denoise_blocks needs one distinct step cache per block")
        _, frames, h, w = blocks[0].latents.shape
        grid = TokenGrid(h, w)
        for block, cache in zip(blocks, step_caches):
            self._check_block(block, grid, cache, cond_cache)
        tokens = frames * grid.tokens_per_frame
        windows = [cache.window(b.first_frame, tokens) for b, cache in zip(blocks, step_caches)]
        if len({active for _, active in windows}) != 1:
            raise ValueError("a batch of denoising calls must read equally long cache windows")
        # 1. Conditioning: per-frame audio tokens, noisy tokens (+ pose), timestep modulation.
        audio_global, audio_local = self._encode_audio([b.audio for b in blocks], frames)
        x = self._noisy_tokens(blocks)  # (1, B * F * tokens per frame, dim)
        e, e0 = self._block_modulation(blocks, frames, cond_cache)
        # 2. Rotations: each block at its global frames, the sink with its reference rolled ahead.
        rope = self._rope(torch.cat([block_positions(b.first_frame, frames, grid.height, grid.width) for b in blocks]))
        # One sink rotation per call: the same shape as the prefill's, so one compiled graph serves all.
        sink_ropes = [self._rope(self._sink_positions(b, cond_cache)) for b in blocks]
        calls = [(cache, block.first_frame) for block, cache in zip(blocks, step_caches)]
        return _Batch(x, e, e0, audio_global, audio_local, rope, sink_ropes, calls, windows, grid, frames, tokens)

    def _velocities(self, batch: _Batch) -> torch.Tensor:
        """Commit the batch's blocks to their caches; (B, C, F, h, w) from the head, block by block."""
        for cache, first_frame in batch.calls:
            cache.commit(first_frame, batch.tokens)
        count, frames, grid = len(batch.calls), batch.frames, batch.grid
        out = self.head(batch.x.reshape(count * frames, grid.tokens_per_frame, -1), batch.e)  # (B*F, tokens, patch*C)
        grid_shape = (frames, grid.height, grid.width)
        return torch.stack(
            [
                unpatchify(part.reshape(-1, part.shape[-1]), grid_shape, self.config.patch_size, self.config.out_dim)
                for part in out.unflatten(0, (count, frames))
            ]
        )

    def _layer_pass(self, cache_rings: list) -> Iterator[int]:
        """Layer indices of one pass; streamed weights and caches are on the device while each runs."""
        rings = ([] if self.weight_ring is None else [self.weight_ring]) + cache_rings
        return run_layers(len(self.blocks), rings)

    # --- attention strategies handed to the blocks -----------------------------------

    def _prefill_attend(self, layer: int, rope: RopeMultipliers, cond_cache: CondCache) -> SelfAttend:
        def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            cond_cache.store(layer, k, v)  # un-rotated: each denoising call rotates them itself
            return sdpa(self.rotate(q, rope), self.rotate(k, rope), v)

        return torch.compiler.disable(attend)

    def _denoise_attention(self, batch: _Batch, layer: int, cond_cache: CondCache) -> SelfAttend:
        """The self-attention of the batch at `layer`: each block (q and k rotated by the
        block) attends to its own step cache's ring plus the sink rotated for it."""
        count = len(batch.calls)

        def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            q = q.unflatten(1, (count, -1)).flatten(0, 1)  # (B, L, H, D)
            k = k.unflatten(1, (count, -1)).flatten(0, 1)
            v = v.unflatten(1, (count, -1)).flatten(0, 1)
            cond_k, cond_v = cond_cache.read(layer)
            # The calls of a batch read windows of one length (sampler.py `_batches`).
            ring_len, sink_len = batch.windows[0][1], cond_k.shape[1]
            # One (B, ring + sink) buffer per tensor, filled in place: the keys of
            # one call are its ring followed by the sink, as in the official order.
            keys = k.new_empty(count, ring_len + sink_len, *k.shape[2:])
            values = torch.empty_like(keys)
            for i, ((cache, _), window) in enumerate(zip(batch.calls, batch.windows)):
                ring = slice(i, i + 1), slice(0, ring_len)
                cache.write_and_read_into(layer, window, k[i : i + 1], v[i : i + 1], keys[ring], values[ring])
            for i, sink_rope in enumerate(batch.sink_ropes):
                keys[i : i + 1, ring_len:] = self.rotate(cond_k, sink_rope)
            values[:, ring_len:] = cond_v
            return sdpa(q, keys, values).flatten(0, 1)[None]

        return torch.compiler.disable(attend)

    # --- helpers --------------------------------------------------------------------

    def _sink_positions(self, block: BlockInputs, cond_cache: CondCache) -> torch.Tensor:
        if cond_cache.positions is None:
            raise ValueError("the cond cache is empty: call prefill_sink first")
        positions = cond_cache.positions.clone()
        positions[: cond_cache.ref_tokens, 0] = rolled_reference_time(block.first_frame, block.sink_distance)
        return positions

    def _patchify(self, conv: nn.Conv3d, latents: torch.Tensor) -> torch.Tensor:
        """(B, C, F, h, w) -> (1, B * F * h/2 * w/2, dim) tokens in (batch, frame, row, col) order."""
        tokens = conv(to_device(latents, self.device).to(dtype=self.dtype)).flatten(2).transpose(1, 2)
        # One block keeps the conv's channel-major layout, as the official model does:
        # the first layer's matrix products then round exactly as its own.
        return tokens if tokens.shape[0] == 1 else tokens.reshape(1, -1, tokens.shape[-1])

    def _noisy_tokens(self, blocks: Sequence[BlockInputs]) -> torch.Tensor:
        latents = torch.stack([to_device(b.latents, self.device) for b in blocks])
        x = self._patchify(self.patch_embedding, latents)
        if self.cond_encoder is not None:
            # An audio-only run feeds all-zero pose latents (docs/model.md §2.8): only the bias remains.
            cond = torch.stack(
                [torch.zeros_like(b.latents) if b.cond_latents is None else b.cond_latents for b in blocks]
            )
            x = x + self._patchify(self.cond_encoder, cond)
        return x + self.trainable_cond_mask.weight[NOISY]

    def _time_conditioning(self, timestep: float, frames: int) -> tuple[torch.Tensor, ...]:
        """e (F, dim), e0 (F, 6, dim) at t and e0 (F, 6, dim) at t = 0, all fp32.

        t and 0 go through the MLPs as one batch of 2F rows, like the official
        zero-timestep slot: the fp32 products round with the batch size, so the
        same batch keeps the numbers exactly the official ones."""
        # The official loop hands the timestep over as float32 before the float64 sinusoid.
        t = to_device(torch.tensor([timestep] * frames + [0.0] * frames, dtype=torch.float32), self.device)
        sinusoid = timestep_sinusoid(self.config.freq_dim, t).float()
        first, second, projection = self.time_embedding[0], self.time_embedding[2], self.time_projection[1]
        assert isinstance(first, nn.Linear) and isinstance(second, nn.Linear) and isinstance(projection, nn.Linear)
        e = linear_fp32(second, F.silu(linear_fp32(first, sinusoid)))
        e0 = linear_fp32(projection, F.silu(e)).unflatten(1, (6, self.config.dim))
        return e[:frames], e0[:frames], e0[frames:]

    def _block_modulation(
        self, blocks: Sequence[BlockInputs], frames: int, cond_cache: CondCache
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """e (B*F, dim) and e0 (B*F, 6, dim) of a batch; each timestep's rows are
        computed once per video (a sampler uses 3 or 4 timesteps) and kept in the cond cache."""
        for block in blocks:
            if block.timestep not in cond_cache.modulation:
                e, e0, _ = self._time_conditioning(block.timestep, frames)
                cond_cache.modulation[block.timestep] = (e, e0)
        rows = [cond_cache.modulation[block.timestep] for block in blocks]
        return torch.cat([e for e, _ in rows]), torch.cat([e0 for _, e0 in rows])

    def _encode_audio(self, audio: Sequence[torch.Tensor], frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """B x (25, audio_dim, 4F) -> global (B*F, dim), local (B*F, tokens+1, dim).

        Each block is encoded alone: `motion_frames` copies of its first audio frame
        stand in for history, and the outputs for that fake history are dropped."""
        need = AUDIO_FRAMES_PER_LATENT * frames
        for features in audio:
            if features.shape[-1] != need:
                raise ValueError(
                    f"a block of {frames} latent frames needs {need} audio frames, got {features.shape[-1]}"
                )
        history = self.config.motion_frames
        stacked = torch.stack([to_device(features, self.device) for features in audio])  # (B, 25, audio_dim, 4F)
        feats = torch.cat([stacked[..., :1].expand(*stacked.shape[:-1], history), stacked], dim=-1)
        glob, local = self.casual_audio_encoder(feats)
        drop = (history + AUDIO_FRAMES_PER_LATENT - 1) // AUDIO_FRAMES_PER_LATENT  # latents of the history
        glob, local = glob[:, drop:, 0], local[:, drop:]
        if glob.shape[1] != frames:
            raise ValueError(f"audio encoder gave {glob.shape[1]} steps for {frames} latent frames")
        return glob.flatten(0, 1), local.flatten(0, 1)

    def _rope(self, positions: torch.Tensor) -> RopeMultipliers:
        return rope_multipliers(
            positions, self.config.head_dim, round_to_fp16=self.numerics.rope_fp16_multipliers, device=self.device
        )

    def _check_block(self, block: BlockInputs, grid: TokenGrid, step_cache: StepCache, cond_cache: CondCache) -> None:
        if not cond_cache.is_filled:
            raise ValueError("the cond cache is empty: call prefill_sink before denoise_block")
        if cond_cache.ref_tokens != grid.tokens_per_frame or step_cache.tokens_per_frame != grid.tokens_per_frame:
            raise ValueError(
                f"block latents of {grid.latent_height}x{grid.latent_width} do not match the caches' geometry"
            )
        if block.first_frame < 0:
            raise ValueError(f"first_frame must be >= 0, got {block.first_frame}")
