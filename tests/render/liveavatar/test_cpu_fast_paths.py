from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from avatar_batch.render.liveavatar.cpu_fast_paths import conv3d_by_planes, use_cpu_fast_paths


@pytest.mark.parametrize("stride", [(1, 1, 1), (2, 1, 1), (1, 2, 2)])
@pytest.mark.parametrize("kernel", [(3, 3, 3), (1, 1, 1), (3, 1, 1)])
def test_plane_convs_equal_conv3d(stride, kernel):
    torch.manual_seed(0)
    conv = nn.Conv3d(5, 7, kernel, stride=stride)
    x = torch.randn(2, 5, 7, 9, 11)
    expected = F.conv3d(x, conv.weight, conv.bias, stride)
    got = conv3d_by_planes(conv, x, conv.weight, conv.bias)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_switching_a_model_keeps_its_outputs():
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    model = AutoencoderKLWan(base_dim=8, dim_mult=[1, 2, 2, 2], num_res_blocks=1, attn_scales=[]).eval()
    video = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    with torch.no_grad():
        before = model(video).sample
        assert use_cpu_fast_paths(model) > 20
        after = model(video).sample
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("with_cache", [False, True])
def test_a_causal_conv_pads_in_space_inside_the_2d_convolution(with_cache):
    from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d

    torch.manual_seed(0)
    conv = WanCausalConv3d(4, 6, 3, padding=1)
    x, cache = torch.randn(1, 4, 3, 10, 12), torch.randn(1, 4, 2, 10, 12)
    cache_x = cache if with_cache else None
    with torch.no_grad():
        expected = conv(x, cache_x)
        assert use_cpu_fast_paths(conv) == 1
        got = conv(x, cache_x)
    assert got.shape == expected.shape == (1, 6, 3, 10, 12)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # Channels-last in memory, so the next layer's planes are views, not copies.
    assert got.permute(0, 2, 3, 4, 1).is_contiguous()


@pytest.mark.parametrize("bias", [False, True])
def test_the_channel_norm_equals_diffusers(bias):
    from diffusers.models.autoencoders.autoencoder_kl_wan import WanRMS_norm

    torch.manual_seed(0)
    norm = WanRMS_norm(6, images=False, bias=bias)
    with torch.no_grad():
        norm.gamma.normal_()
        if bias:
            norm.bias.normal_()
        x = torch.randn(2, 6, 3, 5, 7)
        x[0, :, 0, 0, 0] = 0.0  # a zero vector: the clamp, not a division by zero
        expected = norm(x)
        assert use_cpu_fast_paths(norm) == 1
        got = norm(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_off_the_cpu_each_module_runs_what_it_ran_before():
    """On a CUDA VAE the CPU paths go on top of `cuda_fast_paths`' own: those must still run there."""
    from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d, WanRMS_norm

    model = nn.Sequential(WanCausalConv3d(2, 2, 3, padding=1), WanRMS_norm(2, images=False)).to("meta")
    calls: list[str] = []
    for module in model:
        stock = module.forward

        def earlier(*args, _stock=stock, _name=type(module).__name__):
            calls.append(_name)
            return _stock(*args)

        module.forward = earlier
    assert use_cpu_fast_paths(model) == 2
    x = torch.zeros(1, 2, 1, 4, 4, device="meta")  # any device but the CPU
    model[1](model[0](x))
    assert calls == ["WanCausalConv3d", "WanRMS_norm"]
    model.to_empty(device="cpu")
    model[1](model[0](torch.zeros(1, 2, 1, 4, 4)))
    assert calls == ["WanCausalConv3d", "WanRMS_norm"]  # the CPU paths ran
