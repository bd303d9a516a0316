"""Bytes of every part of a Live Avatar run, from the architecture and the video geometry.

Pure arithmetic over the config records: no tensor is built, nothing is read.
Every count is in bytes unless its name says otherwise, and every constant says
where it comes from. The placement planner (`placement_plan.py`) adds these
parts up for each candidate placement; the parameter formulas are checked
against the real modules built on the meta device in the tests.

What it knows:
* DiT parameters split into the trunk (embeddings, audio encoder, FramePack,
  head) and the audio injectors, both always resident, and 40 layers, one
  transformer block each: what a layer stream moves;
  within each, the nn.Linear weights that `--weight-format fp8|int8|int4` stores in
  8 or 4 bits (every linear `dit/fp8.py` quantises) and the rest, kept in the run dtype;
* the KV caches of `dit/cache.py`: one ring of `frames_per_clip / 4` latent
  frames per step and layer, and the sink (reference + FramePack) keys and
  values of the cond cache, which may stream, and its text keys and values,
  which never do;
* the activations of the largest wavefront call (`sampler.py` batches up to
  `steps` calls of one anti-diagonal into one DiT call) and the VAE decoder's
  workspace (`vae.decode_bytes`, the runner's own estimate);
* umT5, wav2vec2 and the VAE weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from math import prod

from avatar_batch.render.liveavatar.config import AudioSizes, DiTConfig, ModelConfig
from avatar_batch.render.liveavatar.dit.cache import TokenGrid
from avatar_batch.render.liveavatar.dit.framepack import BUCKET_KERNELS
from avatar_batch.render.liveavatar.dit.quant import INT4_GROUP
from avatar_batch.render.liveavatar.limits import LATENT_FRAMES_PER_BLOCK, VIDEO_FRAMES_PER_BLOCK
from avatar_batch.render.liveavatar.text_encoder import expected_t5_tensors
from avatar_batch.render.liveavatar.vae import decode_bytes, expected_vae_tensors

GIB = 2**30
FP32_BYTES = 4
EIGHT_BIT_BYTES = 1
BF16_BYTES = 2
INT4_GROUP_BYTES = 2 * BF16_BYTES  # each int4 group's bf16 offset and step (dit/quant.py)
# The causal audio encoder mixes all 25 wav2vec2 hidden states (dit/audio.py).
AUDIO_HIDDEN_STATES = 25
# Its convolutions: kernel 3 (dit/audio.py CausalConv1d).
AUDIO_CONV_KERNEL = 3
# wav2vec2 feature extractor and positional conv (audio_encoder.py, the XLSR-53 config).
W2V_CONV_KERNELS = (10, 3, 3, 3, 3, 2, 2)
W2V_POS_CONV_KERNEL = 128
W2V_POS_CONV_GROUPS = 16


@dataclass(frozen=True)
class Params:
    """Parameter counts of one part. `linear` = weights `--weight-format` may store in 8 or 4 bits."""

    linear: int = 0
    other: int = 0
    linear_layers: int = 0  # one fp32 scale each in fp8 (per tensor, dit/fp8.py)
    linear_rows: int = 0  # one fp32 scale each in int8 (per output row)

    @property
    def total(self) -> int:
        return self.linear + self.other

    def __add__(self, more: Params) -> Params:
        return Params(
            self.linear + more.linear,
            self.other + more.other,
            self.linear_layers + more.linear_layers,
            self.linear_rows + more.linear_rows,
        )

    def nbytes(self, weight_format: str, run_dtype_bytes: int = 2) -> int:
        """Stored bytes: 8-bit linears carry fp32 scales, int4 ones two bf16 numbers per group
        (every 14B linear's width divides into whole groups); everything else stays in the run dtype."""
        other = self.other * run_dtype_bytes
        if weight_format == "fp8":
            return self.linear * EIGHT_BIT_BYTES + self.linear_layers * FP32_BYTES + other
        if weight_format == "int8":
            return self.linear * EIGHT_BIT_BYTES + self.linear_rows * FP32_BYTES + other
        if weight_format == "int4":
            return self.linear // 2 + self.linear // INT4_GROUP * INT4_GROUP_BYTES + other
        return self.linear * run_dtype_bytes + other


def _attention(dim: int) -> Params:
    """q, k, v, o Linears with bias and RMSNorm gains on q and k (dit/attention.py)."""
    return Params(linear=4 * dim * dim, other=4 * dim + 2 * dim, linear_layers=4, linear_rows=4 * dim)


def block_params(c: DiTConfig) -> Params:
    """One transformer block (dit/block.py): modulation, self- and cross-attention, norm3, FFN."""
    d, f = c.dim, c.ffn_dim
    ffn = Params(linear=2 * d * f, other=f + d, linear_layers=2, linear_rows=f + d)
    return Params(other=6 * d + 2 * d) + _attention(d) + _attention(d) + ffn  # modulation, norm3


def injector_params(c: DiTConfig) -> Params:
    """One audio injector (dit/audio.py): a cross-attention and its AdaLN Linear(dim, 2 dim)."""
    d = c.dim
    return _attention(d) + Params(linear=2 * d * d, other=2 * d, linear_layers=1, linear_rows=2 * d)


def trunk_params(c: DiTConfig) -> Params:
    """Everything outside the layers; kept in the run dtype (fp8.py leaves these linears in bf16)."""
    d, patch = c.dim, prod(c.patch_size)
    quarter, half = d // 4, d // 2
    conv = AUDIO_CONV_KERNEL
    counts = [
        c.in_dim * d * patch + d,  # patch_embedding
        c.text_dim * d + d + d * d + d,  # text_embedding
        c.freq_dim * d + d + d * d + d,  # time_embedding
        d * 6 * d + 6 * d,  # time_projection
        2 * d + d * patch * c.out_dim + patch * c.out_dim,  # head (modulation + linear)
        (c.cond_dim * d * patch + d) if c.cond_dim > 0 else 0,  # cond_encoder
        AUDIO_HIDDEN_STATES + d,  # audio encoder layer weights, padding token
        c.audio_dim * quarter * c.num_audio_token * conv + quarter * c.num_audio_token,  # conv1_local
        c.audio_dim * quarter * conv + quarter,  # conv1_global
        quarter * half * conv + half + half * d * conv + d,  # conv2, conv3
        d * d + d,  # audio encoder final_linear
        3 * d,  # trainable_cond_mask
        sum(c.in_dim * d * prod(k) + d for k in BUCKET_KERNELS),  # frame_packer
    ]
    return Params(other=sum(counts))


def layer_params(c: DiTConfig) -> list[Params]:
    """Per layer: its transformer block, the unit a layer stream moves (dit/weight_stream.py).
    The audio injectors that run after some layers are not part of it: they stay on the
    device with the trunk (`injectors_params`), whatever the placement."""
    return [block_params(c)] * c.num_layers


def injectors_params(c: DiTConfig) -> Params:
    """All audio injectors together; their linears are stored as the blocks' are."""
    return sum((injector_params(c) for _ in c.audio_inject_layers), Params())


def largest_linear_weights(c: DiTConfig) -> int:
    """Elements of the largest DiT linear weight (the FFN's, dim x ffn_dim)."""
    return max(c.dim * c.ffn_dim, c.dim * c.dim * 2)


def t5_params(model: ModelConfig) -> int:
    return sum(prod(shape) for _, shape, _ in expected_t5_tensors(model.t5))


def vae_params(model: ModelConfig) -> int:
    return sum(prod(shape) for _, shape, _ in expected_vae_tensors(model.vae))


def wav2vec2_params(a: AudioSizes) -> int:
    """Wav2Vec2ForCTC as audio_encoder.py configures it (layer-norm feature extractor with
    conv biases, stable layer norm, weight-normed positional conv, CTC head)."""
    h, conv = a.hidden_size, a.conv_dim
    extractor = sum((1 if i == 0 else conv) * conv * k + conv + 2 * conv for i, k in enumerate(W2V_CONV_KERNELS))
    projection = 2 * conv + conv * h + h
    pos_conv = h * (h // W2V_POS_CONV_GROUPS) * W2V_POS_CONV_KERNEL + W2V_POS_CONV_KERNEL + h
    layer = (
        4 * (h * h + h) + 2 * h + (h * a.intermediate_size + a.intermediate_size + a.intermediate_size * h + h) + 2 * h
    )
    masked_embed, final_norm, ctc_head = h, 2 * h, h * a.vocab_size + a.vocab_size
    return extractor + projection + masked_embed + pos_conv + final_norm + a.num_layers * layer + ctc_head


@dataclass(frozen=True)
class VideoShape:
    """What the caches and activations depend on: pixel size, clip length, steps."""

    height_px: int
    width_px: int
    frames_per_clip: int
    sample_steps: int

    @property
    def grid(self) -> TokenGrid:
        return TokenGrid.from_pixels(self.height_px, self.width_px)

    @property
    def window_latent_frames(self) -> int:
        """The step caches' ring: one clip of latent frames (sampler.py)."""
        return self.frames_per_clip // VIDEO_FRAMES_PER_BLOCK * LATENT_FRAMES_PER_BLOCK

    @property
    def wave_calls(self) -> int:
        """Denoising calls batched into the largest DiT call: one per step (sampler.py)."""
        return self.sample_steps


def step_cache_layer_bytes(c: DiTConfig, video: VideoShape, kv_bytes: int) -> int:
    """Keys and values of one step's ring at one layer: 2 x window tokens x dim."""
    return 2 * video.window_latent_frames * video.grid.tokens_per_frame * c.dim * kv_bytes


def sink_cache_layer_bytes(c: DiTConfig, video: VideoShape, run_bytes: int) -> int:
    """Sink keys/values of one layer in the run dtype: the part of the cond cache that may stream."""
    return 2 * video.grid.sink_tokens * c.dim * run_bytes


def text_cache_layer_bytes(c: DiTConfig, run_bytes: int) -> int:
    """Text cross-attention keys/values of one layer in the run dtype: resident whatever
    the placement (model.py keeps `CondCache.text` on the device)."""
    return 2 * c.text_len * c.dim * run_bytes


def activation_bytes(c: DiTConfig, video: VideoShape, run_bytes: int, fp8_compute: bool) -> int:
    """Peak live tensors of the largest wavefront call (B = steps calls of one block each).

    Attention: each call's ring + sink keys and values gathered into one buffer
    (model.py `_denoise_attention`), the sink keys rotated in fp32, and x, the
    normed input, q, k, v of the block's tokens. FFN: x, the fp32 residual and
    its fp32 LayerNorm, the modulated input, the hidden layer before and after
    GELU, and the fp32 output and sum (block.py). fp8 arithmetic adds, for the
    FFN's second linear, the fp32 copy, the scaled fp32 copy and the fp8 copy of
    its input (fp8.py `quantise`)."""
    d, f, calls = c.dim, c.ffn_dim, video.wave_calls
    grid = video.grid
    query_tokens = calls * LATENT_FRAMES_PER_BLOCK * grid.tokens_per_frame
    key_tokens = video.window_latent_frames * grid.tokens_per_frame + grid.sink_tokens
    attention = (
        2 * calls * key_tokens * d * run_bytes
        + calls * grid.sink_tokens * d * (FP32_BYTES + run_bytes)
        + query_tokens * d * 5 * run_bytes
    )
    ffn = query_tokens * (d * (2 * run_bytes + 4 * FP32_BYTES) + f * 2 * run_bytes)
    if fp8_compute:
        ffn += query_tokens * f * (2 * FP32_BYTES + EIGHT_BIT_BYTES)
    return max(attention, ffn)


def decoder_bytes(video: VideoShape, latents_per_call: int) -> int:
    """The VAE decoder's workspace for one streaming call (vae.py's own estimate)."""
    return decode_bytes(latents_per_call, video.height_px, video.width_px)


@dataclass(frozen=True)
class ModelBytes:
    """Every weight of a run in bytes, at the chosen storage and run dtype."""

    trunk: int  # always resident: the trunk in the run dtype and the audio injectors as stored
    layers: tuple[int, ...]
    dequantise_workspace: int  # bf16 copies of the two largest linears when 8/4-bit weights compute in bf16
    t5: int
    wav2vec2: int
    vae: int

    @property
    def helpers(self) -> int:
        return self.t5 + self.wav2vec2 + self.vae

    @property
    def dit(self) -> int:
        return self.trunk + sum(self.layers)


@lru_cache(maxsize=16)
def model_bytes(model: ModelConfig, weight_format: str, run_bytes: int, compute: str) -> ModelBytes:
    c = model.dit
    quantised_in_bf16 = weight_format in ("fp8", "int8", "int4") and compute != "fp8"
    return ModelBytes(
        trunk=trunk_params(c).nbytes("bf16", run_bytes) + injectors_params(c).nbytes(weight_format, run_bytes),
        layers=tuple(p.nbytes(weight_format, run_bytes) for p in layer_params(c)),
        dequantise_workspace=2 * largest_linear_weights(c) * run_bytes if quantised_in_bf16 else 0,
        t5=t5_params(model) * run_bytes,
        wav2vec2=wav2vec2_params(model.audio) * run_bytes,
        vae=vae_params(model) * run_bytes,
    )
