"""The DiT's attention caches (spec §2.7), as small explicit records.

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
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from avatar_batch.render.liveavatar.dit.framepack import BUCKET_KERNELS, BUCKET_LATENTS

VAE_STRIDE_PX = 8  # pixels per latent cell
DEFAULT_WINDOW_LATENT_FRAMES = 12  # one 48-frame clip: the block and the 3 before it


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
        """Reference (1 frame) + FramePack motion tokens: 2.5 frames' worth (spec §2.7a)."""
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

    def zeros(self, num_tokens: int) -> list[torch.Tensor]:
        return [
            torch.zeros(1, num_tokens, self.num_heads, self.head_dim, dtype=self.dtype, device=self.device)
            for _ in range(self.num_layers)
        ]


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

    @property
    def capacity_tokens(self) -> int:
        return self.keys[0].shape[1]

    @property
    def is_filled(self) -> bool:
        return self.positions is not None

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

    @property
    def capacity_tokens(self) -> int:
        return self.keys[0].shape[1]

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

    def write_and_read(
        self, layer: int, first_frame: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this block's rotated k and v at its ring slot; return the keys and values to attend to."""
        slot, active = self.window(first_frame, k.shape[1])
        self.keys[layer][:, slot : slot + k.shape[1]] = k
        self.values[layer][:, slot : slot + k.shape[1]] = v
        return self.keys[layer][:, :active], self.values[layer][:, :active]

    def commit(self, first_frame: int, block_tokens: int) -> None:
        """Record that every layer now holds the block (called once per denoising call)."""
        self.written_tokens = max(self.written_tokens, first_frame * self.tokens_per_frame + block_tokens)


def allocate_cond_cache(shape: CacheShape, grid: TokenGrid) -> CondCache:
    n = grid.sink_tokens
    return CondCache(keys=shape.zeros(n), values=shape.zeros(n))


def allocate_step_caches(
    shape: CacheShape, grid: TokenGrid, num_steps: int, window_latent_frames: int = DEFAULT_WINDOW_LATENT_FRAMES
) -> list[StepCache]:
    """One ring cache per denoising step, each `window_latent_frames` latent frames long."""
    n = window_latent_frames * grid.tokens_per_frame
    return [
        StepCache(keys=shape.zeros(n), values=shape.zeros(n), tokens_per_frame=grid.tokens_per_frame)
        for _ in range(num_steps)
    ]
