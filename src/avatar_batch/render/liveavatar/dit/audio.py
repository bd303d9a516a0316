"""Audio conditioning inside the DiT: the causal audio encoder (docs/model.md §3.4) and
the audio injectors (docs/model.md §2.6), under the official key names
(`casual_audio_encoder.*` keeps the official spelling, `audio_injector.*`).

The encoder turns the 25 stacked wav2vec2 hidden states of a block's video
frames into, per latent frame, 4 local tokens + 1 learned padding token and
one global vector. The official code runs it in an fp32 autocast region: the
layer weighting stays in the model dtype, the convolutions, LayerNorms and the
final Linear compute in fp32, and the results are rounded to the model dtype.
Each injector adds, to the noisy tokens of each latent frame, a cross-attention
over that frame's 5 audio tokens after an AdaLN driven by the global vector.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from avatar_batch.render.liveavatar.dit.attention import Attention
from avatar_batch.render.liveavatar.dit.embeddings import linear_fp32

# wav2vec2-large has 24 layers; the encoder mixes all 25 hidden states.
AUDIO_HIDDEN_STATES = 25
AUDIO_FRAMES_PER_LATENT = 4  # the VAE's temporal stride
ENCODER_EPS = 1e-6
ADALN_EPS = 1e-5  # diffusers AdaLayerNorm default, not the blocks' 1e-6


class CausalConv1d(nn.Module):
    """Conv1d with replicate left padding of kernel-1 steps, so step t sees inputs <= t*stride."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, T) fp32 -> (B, C_out, T_out) fp32."""
        padded = F.pad(x, (self.conv.kernel_size[0] - 1, 0), mode="replicate")
        bias = None if self.conv.bias is None else self.conv.bias.float()
        return F.conv1d(padded, self.conv.weight.float(), bias, stride=self.conv.stride)


def _norm_silu(x: torch.Tensor) -> torch.Tensor:
    """LayerNorm (no affine) over channels then SiLU, for (N, C, T) -> (N, T, C)."""
    x = x.transpose(1, 2)
    return F.silu(F.layer_norm(x, (x.shape[-1],), eps=ENCODER_EPS))


class AudioMotionEncoder(nn.Module):
    """The official `casual_audio_encoder.encoder`: local and global strided causal conv stacks."""

    def __init__(self, audio_dim: int, dim: int, num_tokens: int):
        super().__init__()
        self.num_tokens = num_tokens
        self.padding_tokens = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.conv1_local = CausalConv1d(audio_dim, dim // 4 * num_tokens, stride=1)
        self.conv1_global = CausalConv1d(audio_dim, dim // 4, stride=1)
        self.conv2 = CausalConv1d(dim // 4, dim // 2, stride=2)
        self.conv3 = CausalConv1d(dim // 2, dim, stride=2)
        self.final_linear = nn.Linear(dim, dim)

    def _shared_tail(self, x: torch.Tensor) -> torch.Tensor:
        """(N, dim/4, T) after conv1 -> (N, T', dim): two stride-2 convs, each LN + SiLU."""
        x = _norm_silu(x)
        x = _norm_silu(self.conv2(x.transpose(1, 2)))
        return _norm_silu(self.conv3(x.transpose(1, 2)))

    def forward(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feat (B, T, audio_dim) fp32 -> global (B, T', 1, dim), local (B, T', tokens+1, dim), fp32."""
        b = feat.shape[0]
        x = feat.transpose(1, 2)  # (B, audio_dim, T)
        local = self.conv1_local(x)  # (B, tokens * dim/4, T)
        local = local.reshape(b * self.num_tokens, local.shape[1] // self.num_tokens, local.shape[2])
        local = self._shared_tail(local)  # (B * tokens, T', dim)
        local = local.reshape(b, self.num_tokens, local.shape[1], local.shape[2]).transpose(1, 2)
        padding = self.padding_tokens.float().expand(b, local.shape[1], 1, local.shape[3])
        local = torch.cat([local, padding], dim=2)
        glob = linear_fp32(self.final_linear, self._shared_tail(self.conv1_global(x)))
        return glob[:, :, None, :], local


class CausalAudioEncoder(nn.Module):
    """Learned softmax-free mix of the 25 hidden states, then `AudioMotionEncoder`."""

    def __init__(self, audio_dim: int, dim: int, num_tokens: int):
        super().__init__()
        self.weights = nn.Parameter(torch.full((1, AUDIO_HIDDEN_STATES, 1, 1), 0.01))
        self.encoder = AudioMotionEncoder(audio_dim, dim, num_tokens)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features (B, 25, audio_dim, T) -> (global (B, T', 1, dim), local (B, T', 5, dim)) in the model dtype."""
        dtype = self.weights.dtype
        w = F.silu(self.weights)
        mixed = ((features.to(dtype) * w) / w.sum(dim=1, keepdim=True)).sum(dim=1)  # (B, audio_dim, T)
        glob, local = self.encoder(mixed.transpose(1, 2).float())
        return glob.to(dtype), local.to(dtype)


class AudioAdaLN(nn.Module):
    """diffusers AdaLayerNorm with chunk_dim=1: shift is the first half of Linear(SiLU(cond))."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, 2 * dim)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x (F, n, dim), cond (F, dim) -> (F, n, dim) fp32."""
        shift, scale = self.linear(F.silu(cond)).float().chunk(2, dim=1)
        normed = F.layer_norm(x.float(), (x.shape[-1],), eps=ADALN_EPS)
        return normed * (1 + scale[:, None, :]) + shift[:, None, :]


class AudioInjector(nn.Module):
    """Per injection layer: AdaLN + per-frame cross-attention over the frame's audio tokens."""

    def __init__(self, dim: int, num_heads: int, num_layers: int, eps: float):
        super().__init__()
        self.injector = nn.ModuleList(Attention(dim, num_heads, eps) for _ in range(num_layers))
        self.injector_adain_layers = nn.ModuleList(AudioAdaLN(dim) for _ in range(num_layers))

    def inject(
        self, index: int, x: torch.Tensor, audio_global: torch.Tensor, audio_local: torch.Tensor
    ) -> torch.Tensor:
        """x (1, F*n, dim) noisy tokens; audio_global (F, dim); audio_local (F, 5, dim). Returns new x."""
        frames = audio_global.shape[0]
        tokens = x.reshape(frames, x.shape[1] // frames, x.shape[2])
        u = self.injector_adain_layers[index](tokens, audio_global).to(x.dtype)
        residual = self.injector[index].cross(u, audio_local)  # type: ignore[operator]  # (F, n, dim)
        return x + residual.reshape(x.shape)
