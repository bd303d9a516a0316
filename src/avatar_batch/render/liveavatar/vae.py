"""Wan2.1 video VAE of Live Avatar (docs/model.md §5), run as diffusers' AutoencoderKLWan.

The checkpoint is the Wan-native `Wan2.1_VAE.pth` (fp32, no config). One walk
over the architecture (`_layout`) yields every tensor's Wan key, diffusers key
and shape, so the manifest and the key map cannot drift apart; its sizes are
read off the file's shapes by `checkpoint/sizes.py` (the same reading
`weights verify` does; a test round-trips the two). Latent normalisation
`(mu - mean) / std` happens here, outside the module, as in both Wan and
diffusers.

`Vae.encode` / `Vae.decode` process whole clips; `StreamDecoder` decodes a
latent sequence a chunk at a time with the causal-conv cache kept alive
between chunks (the TPP path's streaming decode), giving the same frames as
one decode of the whole sequence.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from avatar_batch.core.errors import Problem, WeightsError
from avatar_batch.core.fsio import atomic_path
from avatar_batch.render.liveavatar.checkpoint.layout import VAE_NAME
from avatar_batch.render.liveavatar.checkpoint.sizes import VAE_LATENT_CHANNELS, infer_vae_sizes
from avatar_batch.render.liveavatar.config import VaeSizes
from avatar_batch.render.liveavatar.cpu_fast_paths import use_cpu_fast_paths
from avatar_batch.render.liveavatar.cuda_fast_paths import cudnn_autotuned, use_cuda_fast_paths, use_cuda_layout
from avatar_batch.render.liveavatar.file_pages import to_device_releasing
from avatar_batch.render.liveavatar.memory import free_device_bytes
from avatar_batch.render.liveavatar.text_encoder import TensorSpec, load_pth, pth_shapes, tensor_problems

VAE_FILENAME = VAE_NAME
VAE_DTYPE = "float32"
VIDEO_CHANNELS = 3

# Per-channel latent statistics of the released VAE (docs/model.md §5; z_dim 16 only).
# VAE_LATENT_CHANNELS (checkpoint/sizes.py) is their length.
LATENTS_MEAN = (
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
    0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
)  # fmt: skip
LATENTS_STD = (
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
)  # fmt: skip

Entry = tuple[str, str, tuple[int, ...]]  # (Wan key, diffusers key, shape)


# --- architecture walk: manifest and key map ----------------------------------------


def _conv(wan: str, hf: str, c_in: int, c_out: int, kernel: tuple[int, ...]) -> list[Entry]:
    return [(f"{wan}.weight", f"{hf}.weight", (c_out, c_in, *kernel)), (f"{wan}.bias", f"{hf}.bias", (c_out,))]


def _rms(wan: str, hf: str, dim: int, images: bool) -> list[Entry]:
    # Gamma broadcasts over (H, W) for 2-D attention inputs, over (T, H, W) otherwise.
    return [(f"{wan}.gamma", f"{hf}.gamma", (dim, 1, 1) if images else (dim, 1, 1, 1))]


def _resblock(wan: str, hf: str, c_in: int, c_out: int) -> list[Entry]:
    entries = _rms(f"{wan}.residual.0", f"{hf}.norm1", c_in, images=False)
    entries += _conv(f"{wan}.residual.2", f"{hf}.conv1", c_in, c_out, (3, 3, 3))
    entries += _rms(f"{wan}.residual.3", f"{hf}.norm2", c_out, images=False)
    entries += _conv(f"{wan}.residual.6", f"{hf}.conv2", c_out, c_out, (3, 3, 3))
    if c_in != c_out:
        entries += _conv(f"{wan}.shortcut", f"{hf}.conv_shortcut", c_in, c_out, (1, 1, 1))
    return entries


def _attention(wan: str, hf: str, dim: int) -> list[Entry]:
    entries = _rms(f"{wan}.norm", f"{hf}.norm", dim, images=True)
    entries += _conv(f"{wan}.to_qkv", f"{hf}.to_qkv", dim, 3 * dim, (1, 1))
    return entries + _conv(f"{wan}.proj", f"{hf}.proj", dim, dim, (1, 1))


def _resample(wan: str, hf: str, dim: int, mode: str) -> list[Entry]:
    """Spatial 2x down/up-sampling, plus a causal time conv in the 3-D modes.
    Up-sampling halves the channels; its time conv doubles them to emit 2 frames."""
    up = mode.startswith("up")
    entries = _conv(f"{wan}.resample.1", f"{hf}.resample.1", dim, dim // 2 if up else dim, (3, 3))
    if mode.endswith("3d"):
        entries += _conv(f"{wan}.time_conv", f"{hf}.time_conv", dim, 2 * dim if up else dim, (3, 1, 1))
    return entries


def _middle(wan: str, hf: str, dim: int) -> list[Entry]:
    entries = _resblock(f"{wan}.middle.0", f"{hf}.mid_block.resnets.0", dim, dim)
    entries += _attention(f"{wan}.middle.1", f"{hf}.mid_block.attentions.0", dim)
    return entries + _resblock(f"{wan}.middle.2", f"{hf}.mid_block.resnets.1", dim, dim)


def _encoder(sizes: VaeSizes) -> list[Entry]:
    dims = [sizes.dim * mult for mult in (1, *sizes.dim_mult)]
    entries = _conv("encoder.conv1", "encoder.conv_in", VIDEO_CHANNELS, dims[0], (3, 3, 3))
    index, scale = 0, 1.0
    for level, (c_in, c_out) in enumerate(zip(dims[:-1], dims[1:])):
        for _ in range(sizes.num_res_blocks):
            entries += _resblock(f"encoder.downsamples.{index}", f"encoder.down_blocks.{index}", c_in, c_out)
            index, c_in = index + 1, c_out
            if scale in sizes.attn_scales:
                entries += _attention(f"encoder.downsamples.{index}", f"encoder.down_blocks.{index}", c_out)
                index += 1
        if level != len(sizes.dim_mult) - 1:
            mode = "downsample3d" if sizes.temperal_downsample[level] else "downsample2d"
            entries += _resample(f"encoder.downsamples.{index}", f"encoder.down_blocks.{index}", c_out, mode)
            index, scale = index + 1, scale / 2
    entries += _middle("encoder", "encoder", dims[-1])
    entries += _rms("encoder.head.0", "encoder.norm_out", dims[-1], images=False)
    return entries + _conv("encoder.head.2", "encoder.conv_out", dims[-1], 2 * sizes.z_dim, (3, 3, 3))


def _decoder(sizes: VaeSizes) -> list[Entry]:
    """Wan numbers the decoder's layers flat (`upsamples.j`); diffusers groups
    each level's num_res_blocks + 1 resnets and its up-sampler into one block."""
    dims = [sizes.dim * mult for mult in (sizes.dim_mult[-1], *reversed(sizes.dim_mult))]
    temperal_upsample = tuple(reversed(sizes.temperal_downsample))
    entries = _conv("decoder.conv1", "decoder.conv_in", sizes.z_dim, dims[0], (3, 3, 3))
    entries += _middle("decoder", "decoder", dims[0])
    index = 0
    for level, (c_in, c_out) in enumerate(zip(dims[:-1], dims[1:])):
        c_in = c_in // 2 if level > 0 else c_in  # the previous up-sampler halved the channels
        for res in range(sizes.num_res_blocks + 1):
            entries += _resblock(f"decoder.upsamples.{index}", f"decoder.up_blocks.{level}.resnets.{res}", c_in, c_out)
            index, c_in = index + 1, c_out
        if level != len(sizes.dim_mult) - 1:
            mode = "upsample3d" if temperal_upsample[level] else "upsample2d"
            hf = f"decoder.up_blocks.{level}.upsamplers.0"
            entries += _resample(f"decoder.upsamples.{index}", hf, c_out, mode)
            index += 1
    entries += _rms("decoder.head.0", "decoder.norm_out", dims[-1], images=False)
    return entries + _conv("decoder.head.2", "decoder.conv_out", dims[-1], VIDEO_CHANNELS, (3, 3, 3))


def _layout(sizes: VaeSizes) -> list[Entry]:
    """Every tensor in the Wan state-dict order: encoder, quant convs, decoder."""
    if sizes.attn_scales:
        raise WeightsError(f"VAE sizes {sizes}: attention inside the up/down blocks is not supported")
    if len(sizes.temperal_downsample) != len(sizes.dim_mult) - 1:
        raise WeightsError(f"VAE sizes {sizes}: temperal_downsample needs one flag per level but the last")
    quant = _conv("conv1", "quant_conv", 2 * sizes.z_dim, 2 * sizes.z_dim, (1, 1, 1))
    post_quant = _conv("conv2", "post_quant_conv", sizes.z_dim, sizes.z_dim, (1, 1, 1))
    return _encoder(sizes) + quant + post_quant + _decoder(sizes)


def expected_vae_tensors(sizes: VaeSizes) -> list[TensorSpec]:
    """Keys, shapes and dtype of the Wan-native `Wan2.1_VAE.pth`."""
    return [(wan, shape, VAE_DTYPE) for wan, _, shape in _layout(sizes)]


def vae_key_map(sizes: VaeSizes) -> dict[str, str]:
    """Wan-native key -> `AutoencoderKLWan` key."""
    return {wan: hf for wan, hf, _ in _layout(sizes)}


# --- tiny weights ---------------------------------------------------------------------


def _tiny_tensor(key: str, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    if key.endswith(".gamma"):
        return torch.ones(shape)
    if key.endswith(".bias"):
        return torch.zeros(shape)
    fan_in = 1
    for size in shape[1:]:
        fan_in *= size
    # Unit-gain fan-in scaling keeps activations O(1); the output conv is damped
    # so random latents decode to mid-grey-ish video instead of clamped +-1.
    gain = 0.6 if key.startswith("decoder.head.2") else 1.0
    return torch.randn(shape, generator=generator) * (gain / fan_in**0.5)


def write_tiny_vae(ckpt_dir: Path, sizes: VaeSizes, seed: int) -> None:
    """Random VAE weights in the official file format (fp32, Wan-native keys)."""
    generator = torch.Generator().manual_seed(seed)
    state = {key: _tiny_tensor(key, shape, generator) for key, shape, _ in expected_vae_tensors(sizes)}
    with atomic_path(Path(ckpt_dir) / VAE_FILENAME) as tmp:
        torch.save(state, tmp)


# --- loading --------------------------------------------------------------------------


def _build_autoencoder(state: Mapping[str, torch.Tensor], sizes: VaeSizes, dtype: torch.dtype):
    from diffusers import AutoencoderKLWan

    with torch.device("meta"):
        model = AutoencoderKLWan(
            base_dim=sizes.dim,
            z_dim=sizes.z_dim,
            dim_mult=list(sizes.dim_mult),
            num_res_blocks=sizes.num_res_blocks,
            attn_scales=list(sizes.attn_scales),
            temperal_downsample=list(sizes.temperal_downsample),
            latents_mean=list(LATENTS_MEAN),
            latents_std=list(LATENTS_STD),
        )
    renamed = {hf: state[wan].to(dtype) for wan, hf in vae_key_map(sizes).items()}
    model.load_state_dict(renamed, strict=True, assign=True)
    return model.eval().requires_grad_(False)


def load_vae(
    ckpt_dir: Path,
    *,
    device: torch.device | str,
    dtype: torch.dtype,
    sizes: VaeSizes | None = None,
    compute_device: torch.device | str | None = None,
) -> Vae:
    """Load `<ckpt_dir>/Wan2.1_VAE.pth` into diffusers' AutoencoderKLWan; without
    `sizes`, they are what the file's shapes say. `compute_device` (default `device`,
    where it is placed) is where it will run: a CUDA one gets the CUDA paths."""
    path = Path(ckpt_dir) / VAE_FILENAME
    state = load_pth(path)
    if sizes is None:
        sizes = infer_vae_sizes(path, pth_shapes(state))
    problems = tensor_problems(path, state, expected_vae_tensors(sizes), sizes)
    if sizes.z_dim != VAE_LATENT_CHANNELS:
        message = "latent statistics exist for 16 channels only"
        problems.append(Problem(file=str(path), message=message, field="z_dim", value=str(sizes.z_dim)))
    if problems:
        raise WeightsError(f"{path} does not hold the Wan2.1 VAE it should ({len(problems)} problems)", problems)
    model = to_device_releasing(_build_autoencoder(state, sizes, dtype), device)
    use_fast_paths(model, torch.device(compute_device or device))
    return Vae(model, sizes, torch.device(device), dtype)


def use_fast_paths(model: torch.nn.Module, compute_device: torch.device) -> None:
    """The faster paths for where the VAE will run (`cuda_fast_paths`, `cpu_fast_paths`);
    each defers to the stock code elsewhere, so a lent VAE may still move."""
    if compute_device.type == "cuda":
        use_cuda_layout(model)
        use_cuda_fast_paths(model, norms=False)
    use_cpu_fast_paths(model)


# --- running --------------------------------------------------------------------------


# Latents per decoder call once streaming: one sampler block, 12 frames of activations.
CHUNK_LATENTS = 3


class Vae:
    """Video (B, 3, T, H, W) in [-1, 1] <-> normalised latents (B, 16, 1 + (T-1)/4, H/8, W/8)."""

    def __init__(self, model: Any, sizes: VaeSizes, device: torch.device, dtype: torch.dtype):
        self.model = model  # diffusers.AutoencoderKLWan
        self.sizes = sizes
        self.device = device
        self.dtype = dtype
        self.temporal_stride = 2 ** sum(sizes.temperal_downsample)
        self.spatial_stride = 2 ** (len(sizes.dim_mult) - 1)
        # Official scale = [mean, 1/std] held in the VAE's dtype; the reciprocal is
        # multiplied on encode and divided on decode, rounding included.
        self._mean = torch.tensor(LATENTS_MEAN, dtype=dtype, device=device).view(1, -1, 1, 1, 1)
        self._inv_std = 1.0 / torch.tensor(LATENTS_STD, dtype=dtype, device=device).view(1, -1, 1, 1, 1)

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast around the half-precision VAE, as the official pipeline runs it."""
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def _check_video(self, video: torch.Tensor) -> None:
        _, channels, num_frames, height_px, width_px = video.shape
        if channels != VIDEO_CHANNELS or (num_frames - 1) % self.temporal_stride:
            raise ValueError(f"video {tuple(video.shape)}: need 3 channels and 1 + {self.temporal_stride}k frames")
        if height_px % self.spatial_stride or width_px % self.spatial_stride:
            raise ValueError(f"video {tuple(video.shape)}: height and width must be multiples of {self.spatial_stride}")

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """Normalised posterior means, fp32. Frame 0 alone, then chunks of 4."""
        self._check_video(video)
        with self.autocast():
            posterior = self.model.encode(video.to(self.device, self.dtype)).latent_dist
            latents = (posterior.mean - self._mean) * self._inv_std  # (B, 16, n, h, w)
        return latents.float()

    def denormalise(self, latents: torch.Tensor) -> torch.Tensor:
        return latents.to(self.device, self.dtype) / self._inv_std + self._mean

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Video fp32 in [-1, 1], 1 + 4(n-1) frames for n latents."""
        with self.autocast():
            video = self.model.decode(self.denormalise(latents)).sample  # (B, 3, T, H, W)
        return video.float().clamp(-1.0, 1.0)

    def stream_decoder(self, max_latents: int = CHUNK_LATENTS) -> StreamDecoder:
        """A decoder taking at most `max_latents` per call (the placement's reservation)."""
        return StreamDecoder(self, max_latents)


# Peak live decoder memory per output frame and pixel: the full-resolution
# upsampler's fp32 output of 192 channels (768 B) and about two more of its size
# (a 704x384 call of 12 frames allocated 2.32 GiB for that output alone on an H100).
DECODE_BYTES_PER_FRAME_PIXEL = 3 * 192 * 4
FRAMES_PER_LATENT = 4


def decode_bytes(num_latents: int, height_px: int, width_px: int) -> int:
    """Device memory one decoder call over `num_latents` streaming latents may need."""
    return num_latents * FRAMES_PER_LATENT * height_px * width_px * DECODE_BYTES_PER_FRAME_PIXEL


def latents_per_call(device: torch.device, height_px: int, width_px: int) -> int:
    """CHUNK_LATENTS where the device has room for it, fewer where it has not (a
    704x384 bf16 run leaves about 4 GiB beside the DiT's caches); the CPU always has room."""
    if device.type != "cuda":
        return CHUNK_LATENTS
    free_bytes = free_device_bytes(device)
    free_bytes += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    for count in range(CHUNK_LATENTS, 1, -1):
        if decode_bytes(count, height_px, width_px) <= free_bytes:
            return count
    return 1


def _num_causal_convs(module: torch.nn.Module) -> int:
    from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d

    return sum(isinstance(child, WanCausalConv3d) for child in module.modules())


class StreamDecoder:
    """Decodes one latent sequence in consecutive chunks, keeping each causal
    conv's last input frames (diffusers' `feat_cache`) between calls, so the
    concatenated output equals one `Vae.decode` of the whole sequence.

    The first latent ever fed yields 1 frame, every later latent 4: the first
    chunk gives 1 + 4(n-1) frames, later chunks 4n.
    """

    def __init__(self, vae: Vae, max_latents: int = CHUNK_LATENTS):
        if max_latents < 1:
            raise ValueError(f"a decoder call takes at least 1 latent, not {max_latents}")
        self._vae = vae
        self._max_latents = max_latents
        # One slot per causal conv, in call order; diffusers fills and reads them.
        self._feat_cache: list[Any] = [None] * _num_causal_convs(vae.model.decoder)
        self.num_latents_seen = 0

    def prime(self, latents: torch.Tensor) -> None:
        """Feed context latents (B, 16, n, h, w) whose frames are not wanted."""
        self._run(latents, keep=False)

    def decode_chunk(self, latents: torch.Tensor, max_latents: int | None = None) -> torch.Tensor:
        """Frames (B, 3, F, H, W) fp32 in [-1, 1] for the next latents (B, 16, n, h, w),
        at most `max_latents` (and never more than the decoder's own cap) per decoder call."""
        return torch.cat(self._run(latents, keep=True, max_latents=max_latents), dim=2)

    def used_on(self, stream: torch.cuda.Stream) -> None:
        """Mark the kept state as read by `stream`, so the allocator does not reuse a
        replaced tensor before that stream is done with it (see streaming.py)."""
        for entry in self._feat_cache:
            if isinstance(entry, torch.Tensor) and entry.is_cuda:
                entry.record_stream(stream)

    def frame_size_px(self, latents: torch.Tensor) -> tuple[int, int]:
        """(height, width) in pixels of the frames that latents (..., h, w) decode to."""
        stride = self._vae.spatial_stride
        return latents.shape[-2] * stride, latents.shape[-1] * stride

    def _run(self, latents: torch.Tensor, keep: bool, max_latents: int | None = None) -> list[torch.Tensor]:
        """Decode with our own cache that outlives the call. The very first latent
        goes alone (diffusers' `first_chunk`); after it, up to `CHUNK_LATENTS`
        latents go through the decoder at once, as memory allows: every layer is
        causal in time and per-frame otherwise, so this equals decoding them one
        by one (to rounding) with a third of the kernel launches and larger
        convolutions (48 frames at 704x384 on an H100: 0.84 s -> 0.77 s)."""
        model, frames = self._vae.model, []
        with torch.no_grad(), self._vae.autocast(), cudnn_autotuned():
            x = model.post_quant_conv(self._vae.denormalise(latents))  # 1x1x1 conv: no temporal state
            height_px, width_px = self.frame_size_px(x)
            # Priming runs before the sampler allocates its caches: large transient
            # blocks then would fragment the cache they fill, so it goes latent by latent.
            cap = self._max_latents if max_latents is None else min(self._max_latents, max_latents)
            chunk = min(cap, latents_per_call(x.device, height_px, width_px)) if keep else 1
            if self.num_latents_seen == 0:
                pieces = [x[:, :, :1], *x[:, :, 1:].split(chunk, dim=2)]
            else:
                pieces = list(x.split(chunk, dim=2))
            for piece in pieces:
                if piece.shape[2] == 0:
                    continue
                out = model.decoder(
                    piece, feat_cache=self._feat_cache, feat_idx=[0], first_chunk=self.num_latents_seen == 0
                )
                self.num_latents_seen += piece.shape[2]
                if keep:
                    frames.append(out.float().clamp(-1.0, 1.0))
        return frames
