"""The DiT's attention caches (docs/model.md §2.7), as small explicit records.

* `CondCache`: one per video. The sink prefill stores, per layer, the
  UN-rotated keys and the values of the reference + motion tokens, with their
  RoPE positions; every denoising call re-rotates the keys with a rolled
  reference position, so nothing rotated is kept. It also keeps each layer's
  text cross-attention keys and values: the prompt is fixed for a video, so
  they are computed once instead of in every denoising call, and the
  timestep modulation rows of each timestep the sampler uses.
* `StepCache`: one per denoising step ("timestep forcing": cache i only ever
  holds keys/values produced at noise level t_i). A ring of
  `window_latent_frames` latent frames per layer; a block of latent frames
  starting at global frame f0 is written at token (f0 * tokens_per_frame) mod
  capacity, keys already rotated.

Both are sized from the pixel geometry and the model's own head count and head
dim, in the model's dtype and device. Nothing here runs attention.

Storage follows a `CachePolicy` (issue 11): step caches in the model dtype or
in fp8 (e4m3 with one fp32 scale per token and head, quantised when written,
dequantised when read); step caches past `steps_resident`, and the cond
cache's keys and values when `cond_stream`, live in host memory and visit the
device one layer at a time through a `CacheRing` (cache_stream.py). The text
keys and values and the modulation rows (a few hundred MB) always stay.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from avatar_batch.render.liveavatar.dit.cache_stream import CacheRing, TokenRange, spans_without
from avatar_batch.render.liveavatar.dit.framepack import BUCKET_KERNELS, BUCKET_LATENTS
from avatar_batch.render.liveavatar.dit.rings import CopyEngine

VAE_STRIDE_PX = 8  # pixels per latent cell
DEFAULT_WINDOW_LATENT_FRAMES = 12  # one 48-frame clip: the block and the 3 before it
KV_FORMATS = ("bf16", "fp8")  # "bf16" means the model dtype (fp32 on the CPU)
E4M3_MAX = 448.0


@dataclass(frozen=True)
class TokenGrid:
    """DiT tokens of one latent frame for a pixel size (patch 2x2 on the 8x latent)."""

    latent_height: int
    latent_width: int
    patch_hw: tuple[int, int] = (2, 2)

    @classmethod
    def from_pixels(cls, height_px: int, width_px: int, patch_hw: tuple[int, int] = (2, 2)) -> TokenGrid:
        cell_h, cell_w = VAE_STRIDE_PX * patch_hw[0], VAE_STRIDE_PX * patch_hw[1]
        if height_px % cell_h or width_px % cell_w:
            raise ValueError(f"pixel size {width_px}x{height_px} is not a multiple of {cell_w}x{cell_h}")
        return cls(height_px // VAE_STRIDE_PX, width_px // VAE_STRIDE_PX, patch_hw)

    @property
    def height(self) -> int:
        return self.latent_height // self.patch_hw[0]

    @property
    def width(self) -> int:
        return self.latent_width // self.patch_hw[1]

    @property
    def tokens_per_frame(self) -> int:
        return self.height * self.width

    @property
    def sink_tokens(self) -> int:
        """Reference (1 frame) + FramePack motion tokens: 2.5 frames' worth (docs/model.md §2.7a)."""
        motion = sum(
            (latents // kt) * (self.latent_height // kh) * (self.latent_width // kw)
            for latents, (kt, kh, kw) in zip(BUCKET_LATENTS, BUCKET_KERNELS)
        )
        return self.tokens_per_frame + motion


@dataclass(frozen=True)
class CacheShape:
    """What every cache tensor looks like, taken from the model."""

    num_layers: int
    num_heads: int
    head_dim: int
    dtype: torch.dtype
    device: torch.device


@dataclass(frozen=True)
class CachePolicy:
    """How a run stores its caches; the default keeps everything resident in the model dtype."""

    kv_format: str = "bf16"
    steps_resident: int | None = None  # step caches 0..n-1 stay on the device; None: all of them
    cond_stream: bool = False
    num_slots: int = 2  # device slots per ring (2 = double buffering)
    engine: CopyEngine | None = None  # needed when anything streams

    def __post_init__(self) -> None:
        if self.kv_format not in KV_FORMATS:
            raise ValueError(f"kv_format must be one of {KV_FORMATS}, got {self.kv_format!r}")
        streams = self.cond_stream or self.steps_resident is not None
        if streams and self.engine is None:
            raise ValueError("a cache policy that streams needs a CopyEngine")

    def streams_step(self, step: int) -> bool:
        return self.steps_resident is not None and step >= self.steps_resident


def quantise_fp8_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, n, H, D) -> e4m3 values and fp32 scales (1, n, H, 1): one scale per token and head."""
    scale = x.abs().amax(dim=-1, keepdim=True).float().clamp_min(1e-12) / E4M3_MAX
    return (x.float() / scale).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn), scale


def dequantise_fp8_rows_into(values: torch.Tensor, scales: torch.Tensor, out: torch.Tensor) -> None:
    """out = values x scales in out's dtype: e4m3 values are exact in bf16, so the product
    is the only rounding (the scale is rounded to out's dtype first)."""
    out.copy_(values)
    out.mul_(scales.to(out.dtype))


@dataclass
class CondCache:
    """Sink keys (un-rotated) and values per layer, (1, capacity, heads, head_dim) each."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    length_tokens: int = 0
    positions: torch.Tensor | None = None  # (length, 3) int64 RoPE positions at prefill
    ref_tokens: int = 0  # the first ref_tokens entries are the reference (their time rolls)
    text: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)  # per layer (1, text_len, H, D)
    modulation: dict[float, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)  # t -> e, e0 rows
    ring: CacheRing | None = None  # set when the keys and values stream from host memory
    members: tuple[int, ...] = ()  # their member ids in the ring

    @property
    def capacity_tokens(self) -> int:
        return self.keys[0].shape[1]

    @property
    def is_filled(self) -> bool:
        return self.positions is not None

    def reset(self) -> None:
        """Empty, for another job: the tensors stay where they are (CUDA graphs read them there)."""
        self.length_tokens, self.positions, self.ref_tokens, self.modulation = 0, None, 0, {}

    def keep_text(self, layer: int, kv: tuple[torch.Tensor, torch.Tensor]) -> None:
        """Layer `layer`'s text keys and values, written over the previous ones in place
        when there are some (a refreshed sink or another job), else appended."""
        if layer < len(self.text):
            for kept, new in zip(self.text[layer], kv):
                kept.copy_(new)
        elif layer == len(self.text):
            self.text.append(kv)
        else:
            raise ValueError(f"text keys of layer {layer} before those of layer {len(self.text)}")

    def store(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        length = k.shape[1]
        if length > self.capacity_tokens:
            raise ValueError(f"sink of {length} tokens does not fit the cond cache of {self.capacity_tokens}")
        self.keys[layer][:, :length] = k
        self.values[layer][:, :length] = v

    def read(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.keys[layer][:, : self.length_tokens], self.values[layer][:, : self.length_tokens]


@dataclass
class StepCache:
    """Ring of rotated keys and values of past blocks at one denoising step."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    tokens_per_frame: int
    written_tokens: int = field(default=0)  # global high-water mark, never wrapped
    key_scales: list[torch.Tensor] | None = None  # fp8 storage: (1, capacity, H, 1) fp32 per layer
    value_scales: list[torch.Tensor] | None = None
    ring: CacheRing | None = None  # set when this step's cache streams from host memory
    members: tuple[int, ...] = ()  # its member ids in the ring

    @property
    def capacity_tokens(self) -> int:
        return self.keys[0].shape[1]

    def reset(self) -> None:
        """Empty, for another job (reads never reach past what the job wrote)."""
        self.written_tokens = 0

    def window(self, first_frame: int, block_tokens: int) -> tuple[int, int]:
        """(ring start of the block, number of ring slots its attention reads).

        Before the ring first wraps, the block reads slots up to its own end;
        afterwards the whole ring (the order of keys does not matter to attention)."""
        start = first_frame * self.tokens_per_frame
        if start > self.written_tokens:
            raise ValueError(
                f"block at latent frame {first_frame} skips frames: this step cache holds "
                f"{self.written_tokens // self.tokens_per_frame} frames; run the blocks in order"
            )
        if (start % self.capacity_tokens) + block_tokens > self.capacity_tokens:
            raise ValueError(f"a block of {block_tokens} tokens straddles the ring end; window must be whole blocks")
        if start >= self.capacity_tokens:
            return start % self.capacity_tokens, self.capacity_tokens
        return start, start + block_tokens

    def write_and_read_into(
        self,
        layer: int,
        window: tuple[int, int],
        k: torch.Tensor,
        v: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
    ) -> None:
        """Store this block's rotated k and v at its ring slot, and copy the keys and values
        to attend to into `keys` and `values` (1, window, H, D), the front of the caller's
        attention buffer. `window` is what `window` gave for the block: the caller checks
        once per call, not once per layer, and the layers then depend on these two ints only.
        An fp8 cache dequantises straight into the buffer: a dequantised copy per call
        would add two ring-sized tensors per call of the batch to the peak."""
        slot, active = window
        if keys.shape[1] != active or values.shape[1] != active:
            raise ValueError(f"the attention buffer holds {keys.shape[1]} tokens, the window {active}")
        end = slot + k.shape[1]
        if self.key_scales is None or self.value_scales is None:
            self.keys[layer][:, slot:end] = k
            self.values[layer][:, slot:end] = v
            keys.copy_(self.keys[layer][:, :active])
            values.copy_(self.values[layer][:, :active])
            return
        stores = ((self.keys, self.key_scales, k, keys), (self.values, self.value_scales, v, values))
        for store, scales, x, out in stores:
            store[layer][:, slot:end], scales[layer][:, slot:end] = quantise_fp8_rows(x)
            dequantise_fp8_rows_into(store[layer][:, :active], scales[layer][:, :active], out)

    def traffic(self, first_frame: int, block_tokens: int) -> tuple[list[TokenRange], list[TokenRange]]:
        """(token ranges a call must copy in, ranges it writes) when this cache streams."""
        slot, active = self.window(first_frame, block_tokens)
        written = (slot, slot + block_tokens)
        return spans_without(active, written), [written]

    def commit(self, first_frame: int, block_tokens: int) -> None:
        """Record that every layer now holds the block (called once per denoising call)."""
        self.written_tokens = max(self.written_tokens, first_frame * self.tokens_per_frame + block_tokens)


def _stream_or_zeros(
    shape: CacheShape, ring: CacheRing | None, tokens: int, dtype: torch.dtype, last: int
) -> tuple[list[torch.Tensor], int | None]:
    """Per-layer (1, tokens, H, last) tensors: zeros on the device, or slot views of a ring member."""
    dims = (1, tokens, shape.num_heads, last)
    if ring is None:
        return [torch.zeros(dims, dtype=dtype, device=shape.device) for _ in range(shape.num_layers)], None
    member, views = ring.add(dims, dtype)
    return views, member


def allocate_cond_cache(shape: CacheShape, grid: TokenGrid, policy: CachePolicy = CachePolicy()) -> CondCache:
    n = grid.sink_tokens
    ring = None
    if policy.cond_stream:
        assert policy.engine is not None
        ring = CacheRing(policy.engine, shape.num_layers, policy.num_slots)
    keys, k_id = _stream_or_zeros(shape, ring, n, shape.dtype, shape.head_dim)
    values, v_id = _stream_or_zeros(shape, ring, n, shape.dtype, shape.head_dim)
    members = tuple(m for m in (k_id, v_id) if m is not None)
    return CondCache(keys=keys, values=values, ring=ring, members=members)


def allocate_step_caches(
    shape: CacheShape,
    grid: TokenGrid,
    num_steps: int,
    window_latent_frames: int = DEFAULT_WINDOW_LATENT_FRAMES,
    policy: CachePolicy = CachePolicy(),
) -> list[StepCache]:
    """One ring cache per denoising step, each `window_latent_frames` latent frames long;
    the streamed steps share one `CacheRing`."""
    n = window_latent_frames * grid.tokens_per_frame
    fp8 = policy.kv_format == "fp8"
    ring = None
    if any(policy.streams_step(step) for step in range(num_steps)):
        assert policy.engine is not None
        ring = CacheRing(policy.engine, shape.num_layers, policy.num_slots)
    caches = []
    for step in range(num_steps):
        step_ring = ring if policy.streams_step(step) else None
        value_dtype = torch.float8_e4m3fn if fp8 else shape.dtype
        parts = [_stream_or_zeros(shape, step_ring, n, value_dtype, shape.head_dim) for _ in range(2)]
        if fp8:
            parts += [_stream_or_zeros(shape, step_ring, n, torch.float32, 1) for _ in range(2)]
        tensors = [t for t, _ in parts]
        caches.append(
            StepCache(
                keys=tensors[0],
                values=tensors[1],
                tokens_per_frame=grid.tokens_per_frame,
                key_scales=tensors[2] if fp8 else None,
                value_scales=tensors[3] if fp8 else None,
                ring=step_ring,
                members=tuple(m for _, m in parts if m is not None),
            )
        )
    return caches


def plan_cache_passes(
    calls: list[tuple[StepCache, int]], block_tokens: int, cond_cache: CondCache, prefill: bool = False
) -> list[CacheRing]:
    """Tell each streaming ring what the coming pass reads and writes; the rings in use.

    calls: (step cache, first latent frame) of each denoising call of the pass (none for the prefill)."""
    Spans = list[tuple[int, list[TokenRange]]]
    rings: dict[int, tuple[CacheRing, Spans, Spans]] = {}
    for cache, first_frame in calls:
        if cache.ring is None:
            continue
        reads, writes = cache.traffic(first_frame, block_tokens)
        _, ring_reads, ring_writes = rings.setdefault(id(cache.ring), (cache.ring, [], []))
        ring_reads.extend((m, reads) for m in cache.members)
        ring_writes.extend((m, writes) for m in cache.members)
    if cond_cache.ring is not None:
        whole = [(0, cond_cache.capacity_tokens)]
        reads_cond: Spans = [] if prefill else [(m, [(0, cond_cache.length_tokens)]) for m in cond_cache.members]
        writes_cond: Spans = [(m, whole) for m in cond_cache.members] if prefill else []
        rings[id(cond_cache.ring)] = (cond_cache.ring, reads_cond, writes_cond)
    for ring, ring_reads, ring_writes in rings.values():
        ring.set_pass(ring_reads, ring_writes)
    return [ring for ring, _, _ in rings.values()]
