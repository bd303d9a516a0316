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
