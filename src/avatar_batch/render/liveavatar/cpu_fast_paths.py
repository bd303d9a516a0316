"""Faster CPU paths for the VAE: its 3-D convolutions and channel RMS norms.

PyTorch's CPU build runs fp32 `conv3d` through its generic im2col kernel
(`slow_conv3d`), about 10x slower than its oneDNN `conv2d` on the small
channel counts of the tiny VAE, which made CPU renders and CI smoke runs
minutes long. A 3-D convolution with a kernel of depth k is the sum of k 2-D
convolutions over time-shifted frame stacks, so on the CPU we compute it that
way. Summation order differs from conv3d's, so results agree to float
rounding (~1e-6 relative), not bit for bit. GPUs keep cuDNN's conv3d.

The VAE's RMS norm L2-normalises over the channel axis of (B, C, T, H, W);
`F.normalize` reduces that strided axis slowly on the CPU, while a sum of
squared channel planes is a plain elementwise pass.
"""

from __future__ import annotations

import types
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def conv3d_by_planes(conv: nn.Conv3d, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """`conv` applied to x (B, C, T, H, W) as a sum of 2-D convolutions; no padding."""
    batch, channels, frames, _, _ = x.shape
    depth = weight.shape[2]
    stride_t, dilation_t = conv.stride[0], conv.dilation[0]
    out_frames = (frames - dilation_t * (depth - 1) - 1) // stride_t + 1
    total: torch.Tensor | None = None
    for k in range(depth):
        start = k * dilation_t
        shifted = x[:, :, start : start + stride_t * (out_frames - 1) + 1 : stride_t]  # (B, C, T', H, W)
        planes = shifted.transpose(1, 2).reshape(batch * out_frames, channels, *x.shape[3:])
        y = F.conv2d(planes, weight[:, :, k], None, conv.stride[1:], 0, conv.dilation[1:], conv.groups)
        total = y if total is None else total.add_(y)
    assert total is not None  # a Conv3d kernel has depth >= 1
    if bias is not None:
        total = total + bias.view(1, -1, 1, 1)
    out = total.reshape(batch, out_frames, *total.shape[1:])  # (B, T', O, H', W')
    return out.transpose(1, 2)


def _planes_forward(self: nn.Conv3d, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    if x.device.type != "cpu":
        return nn.Conv3d._conv_forward(self, x, weight, bias)
    return conv3d_by_planes(self, x, weight, bias)


def _channel_rms_forward(self: Any, x: torch.Tensor) -> torch.Tensor:  # diffusers' WanRMS_norm
    if x.device.type != "cpu" or x.dtype != torch.float32 or not self.channel_first:
        return type(self).forward(self, x)
    # F.normalize: x / max(||x||_2, 1e-12) over channels.
    norm = x.square().sum(dim=1, keepdim=True).sqrt_().clamp_min_(1e-12)
    return x / norm * self.scale * self.gamma + self.bias


def use_cpu_fast_paths(model: nn.Module) -> int:
    """Switch `model`'s unpadded Conv3d layers and channel RMS norms to the
    CPU paths above (they defer to the stock code on other devices).
    Returns how many modules were switched."""
    switched = use_plane_convs(model)
    for module in model.modules():
        if type(module).__name__ == "WanRMS_norm" and hasattr(module, "channel_first"):
            module.forward = types.MethodType(_channel_rms_forward, module)
            switched += 1
    return switched


def use_plane_convs(model: nn.Module) -> int:
    """Route every unpadded Conv3d of `model` through `conv3d_by_planes` when it
    runs on the CPU. Returns how many were switched. (The Wan VAE pads causally
    itself, so its convolutions all have padding 0.)"""
    switched = 0
    for module in model.modules():
        if isinstance(module, nn.Conv3d) and tuple(module.padding) == (0, 0, 0) and module.padding_mode == "zeros":
            module._conv_forward = types.MethodType(_planes_forward, module)  # type: ignore[method-assign]
            switched += 1
    return switched
