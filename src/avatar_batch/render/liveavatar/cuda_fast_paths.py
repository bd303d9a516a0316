"""Faster CUDA paths for the VAE decoder: channels-last weights, causal convolutions
without a padded copy, and (measured, not used by the runner) channel RMS norms in
one kernel.

diffusers' `WanCausalConv3d` concatenates the cached frames in front of its input,
then `F.pad`s the result in time, height and width: a full copy of the activation
before every 3x3x3 convolution, at 704x384 up to 12 frames of 96-384 channels at
full resolution. Only the time padding is causal; the spatial padding is
symmetric zero padding, which cuDNN applies inside the convolution for free. So
here the input is only padded in time (and usually not at all: the cache fills
it), and the spatial padding goes to the convolution.

`WanRMS_norm` runs as five memory-bound passes in eager mode (widen to fp32,
normalise, narrow, scale, multiply by gamma); compiled, it is one read and one
write. The compiled norm keeps its intermediates in fp32 where eager rounds to
bf16 between the scale and gamma products, so frames differ from the stock
path by bf16 rounding; a test bounds it.

Convolution weights go channels-last (`use_cuda_layout`), so activations flow
channels-last and cuDNN picks its NDHWC kernels; decoder calls run with cuDNN's
autotuner on (`cudnn_autotuned`), scoped to them. On an H200 at 704x384, 48 frames
decoded in 0.525 s with both against 0.621 s stock (0.550 against 0.687 s a latent
per call, as beside the sampler); channels-last alone 0.569 s, the causal
convolutions alone 0.574 s; the compiled norm added nothing (0.535 s), so it stays
off (benchmarks/results/vae-NVIDIA-H200-20261203.json).

The paths defer to the module's previous forward off CUDA (`cpu_fast_paths.py` serves the CPU).
`benchmarks/profile_vae.py` measures each against the stock decoder.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn


def padded_in_time(
    conv: nn.Conv3d, x: torch.Tensor, cache_x: torch.Tensor | None
) -> tuple[torch.Tensor, tuple[int, int]]:
    """The causal half of diffusers' `WanCausalConv3d` padding: `x` (B, C, T, H, W) after
    the previous call's last frames, or zeros, in time; and the (height, width) zero
    padding it leaves to the convolution, which pads as it reads instead of copying `x`."""
    pad_w, _, pad_h, _, pad_t, _ = conv._padding  # type: ignore[misc]  # (w, w, h, h, 2t, 0), set by diffusers
    if cache_x is not None and pad_t > 0:
        x = torch.cat([cache_x.to(x.device), x], dim=2)
        pad_t -= cache_x.shape[2]
    if pad_t > 0:
        x = F.pad(x, (0, 0, 0, 0, pad_t, 0))
    return x, (pad_h, pad_w)


def causal_conv3d(conv: nn.Conv3d, x: torch.Tensor, cache_x: torch.Tensor | None) -> torch.Tensor:
    """What diffusers' `WanCausalConv3d.forward(x, cache_x)` computes, with the spatial
    zero padding done by the convolution instead of a padded copy of `x`."""
    x, padding_hw = padded_in_time(conv, x, cache_x)
    return F.conv3d(x, conv.weight, conv.bias, conv.stride, (0, *padding_hw), conv.dilation, conv.groups)


def _rms_channels(x: torch.Tensor, gamma: torch.Tensor, scale: float) -> torch.Tensor:
    normed = F.normalize(x.float(), dim=1)  # x / max(||x||_2, 1e-12) over channels
    return (normed * scale * gamma.float()).to(x.dtype)


@functools.cache
def _rms_channels_compiled() -> Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]:
    # Compiled at first use (importing dynamo costs seconds a CPU run need not pay);
    # one graph per activation shape, a handful per video size.
    return torch.compile(_rms_channels, dynamic=False)


def _conv_path(conv: nn.Module, stock: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    def forward(x: torch.Tensor, cache_x: torch.Tensor | None = None) -> torch.Tensor:
        if x.device.type != "cuda":
            return stock(x, cache_x)
        return causal_conv3d(conv, x, cache_x)  # type: ignore[arg-type]  # a WanCausalConv3d

    return forward


def _norm_path(
    norm: nn.Module, stock: Callable[[torch.Tensor], torch.Tensor]
) -> Callable[[torch.Tensor], torch.Tensor]:
    def forward(x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cuda":
            return stock(x)
        return _rms_channels_compiled()(x, norm.gamma, norm.scale)  # type: ignore[arg-type]

    return forward


def _plain_channel_norm(module: nn.Module) -> bool:
    """A channel-first norm without bias: the decoder's kind (its bias is the float 0.0)."""
    bias = getattr(module, "bias", None)
    return bool(getattr(module, "channel_first", False)) and isinstance(bias, float) and bias == 0.0


def use_cuda_fast_paths(model: nn.Module, *, convs: bool = True, norms: bool = True) -> int:
    """Switch `model`'s causal convolutions and channel RMS norms (diffusers' Wan VAE) to
    the paths above; they defer to the stock code off CUDA. Returns how many modules
    were switched."""
    switched = 0
    for module in model.modules():
        name = type(module).__name__
        if convs and name == "WanCausalConv3d" and hasattr(module, "_padding"):
            module.forward = _conv_path(module, module.forward)
            switched += 1
        elif norms and name == "WanRMS_norm" and _plain_channel_norm(module):
            module.forward = _norm_path(module, module.forward)
            switched += 1
    return switched


def use_cuda_layout(model: nn.Module) -> int:
    """Store `model`'s 3-D convolution weights channels-last (NDHWC); returns how many.
    Moving the model between devices keeps the layout."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv3d)]
    for conv in convs:
        conv.weight.data = conv.weight.data.contiguous(memory_format=torch.channels_last_3d)
    return len(convs)


@contextlib.contextmanager
def cudnn_autotuned() -> Iterator[None]:
    """cuDNN's autotuner on for what runs inside (each new shape is timed once per process)."""
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous
