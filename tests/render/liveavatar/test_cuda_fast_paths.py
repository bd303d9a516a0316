"""The VAE's CUDA paths compute what diffusers' stock modules compute; off CUDA they are the stock code."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from avatar_batch.render.liveavatar.cuda_fast_paths import _rms_channels, causal_conv3d, use_cuda_fast_paths


def _tiny_vae():
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    return AutoencoderKLWan(base_dim=8, dim_mult=[1, 2, 2, 2], num_res_blocks=1, attn_scales=[]).eval()


def _causal_convs(model):
    return [m for m in model.modules() if type(m).__name__ == "WanCausalConv3d"]


@pytest.mark.parametrize("cached_frames", [None, 1, 2])
def test_the_causal_conv_without_a_padded_copy_equals_diffusers(cached_frames):
    from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d

    torch.manual_seed(1)
    conv = WanCausalConv3d(4, 6, 3, padding=1)
    x = torch.randn(1, 4, 3, 9, 11)
    cache = None if cached_frames is None else torch.randn(1, 4, cached_frames, 9, 11)
    expected = conv(x, cache)
    got = causal_conv3d(conv, x, cache)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_the_fused_norm_equals_diffusers_to_bf16_rounding():
    from diffusers.models.autoencoders.autoencoder_kl_wan import WanRMS_norm

    torch.manual_seed(2)
    norm = WanRMS_norm(16, images=False)
    norm.gamma.data = torch.rand_like(norm.gamma) + 0.5
    x = torch.randn(1, 16, 3, 5, 7)
    torch.testing.assert_close(_rms_channels(x, norm.gamma, norm.scale), norm(x), rtol=1e-6, atol=1e-6)
    x16, norm16 = x.bfloat16(), norm.bfloat16()
    got, stock = _rms_channels(x16, norm16.gamma, norm16.scale), norm16(x16)
    assert got.dtype == stock.dtype == torch.bfloat16
    # Eager rounds to bf16 between its products; the fused norm rounds once.
    torch.testing.assert_close(got.float(), stock.float(), rtol=2**-7, atol=2**-7)


def test_switching_counts_the_decoders_convs_and_norms_and_leaves_cpu_outputs_alone():
    model = _tiny_vae()
    video = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    norms = [m for m in model.modules() if type(m).__name__ == "WanRMS_norm" and m.channel_first]
    with torch.no_grad():
        before = model(video).sample
        assert use_cuda_fast_paths(model) == len(_causal_convs(model)) + len(norms)
        after = model(video).sample
    assert torch.equal(after, before)  # off CUDA the previous forward runs, bit for bit


def test_each_path_can_be_switched_alone():
    model = _tiny_vae()
    assert use_cuda_fast_paths(model, norms=False) == len(_causal_convs(model))
    assert use_cuda_fast_paths(_tiny_vae(), convs=False, norms=False) == 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_the_fast_decoder_matches_the_stock_one():
    model = _tiny_vae().cuda().bfloat16()
    fast = _tiny_vae().cuda().bfloat16()
    use_cuda_fast_paths(fast)
    z = torch.randn(1, 16, 3, 8, 8, device="cuda", dtype=torch.bfloat16)
    with torch.no_grad():
        expected, got = model.decode(z).sample.float(), fast.decode(z).sample.float()
    assert F.mse_loss(got, expected).item() < 1e-4


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_vae_loaded_for_cuda_runs_the_cuda_causal_convs(tiny_weights, monkeypatch):
    """`load_vae` puts the CPU paths on top of the CUDA ones: on CUDA the CUDA ones still run."""
    from avatar_batch.render.liveavatar import cuda_fast_paths
    from avatar_batch.render.liveavatar.vae import load_vae

    vae = load_vae(tiny_weights / "Wan2.2-S2V-14B", device="cuda", dtype=torch.bfloat16)
    calls = []

    def counted(conv, x, cache_x):
        calls.append(x.device.type)
        return causal_conv3d(conv, x, cache_x)

    monkeypatch.setattr(cuda_fast_paths, "causal_conv3d", counted)
    frames = vae.decode(torch.randn(1, 16, 2, 8, 8, device="cuda"))
    assert frames.shape == (1, 3, 5, 64, 64) and torch.isfinite(frames).all()
    assert calls and set(calls) == {"cuda"}
