"""fp8 linears: which layers are quantised, and how far outputs move.

Off CUDA the layer multiplies the same e4m3 numbers in fp32, so these CPU
tests measure the quantisation error a GPU run has."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from avatar_batch.render.liveavatar.checkpoint.tiny import random_dit
from avatar_batch.render.liveavatar.config import CONFIG_TINY
from avatar_batch.render.liveavatar.dit.fp8 import KEEP_IN_BF16, Fp8Linear, quantise, quantise_linears_fp8
from tests.render.liveavatar.test_dit_compiled import denoise_three_blocks


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.float() - want.float()).norm() / want.float().norm())


def test_quantise_uses_the_whole_e4m3_range():
    x = torch.randn(64, 64) * 3
    x8, inverse = quantise(x)
    assert x8.dtype == torch.float8_e4m3fn
    assert float(x8.float().abs().max()) == 448.0
    assert relative_error(x8.float() * inverse, x) < 0.05


def test_fp8_linear_is_close_to_the_linear():
    torch.manual_seed(0)
    linear = nn.Linear(256, 128)
    x = torch.randn(4, 37, 256)
    got = Fp8Linear(linear)(x)
    assert got.shape == (4, 37, 128)
    assert relative_error(got, linear(x)) < 0.06


def test_the_released_layers_stay_in_bf16_and_the_rest_are_quantised():
    model = random_dit(CONFIG_TINY.dit, seed=0, dtype=torch.float32)
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    count = quantise_linears_fp8(model)
    quantised = [n for n, m in model.named_modules() if isinstance(m, Fp8Linear)]
    kept = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    assert count == len(quantised) == len(linears) - len(kept) > 0
    assert kept and all(name.startswith(KEEP_IN_BF16) for name in kept)
    assert "blocks.0.self_attn.q" in quantised and "blocks.0.ffn.0" in quantised


def test_fp8_model_denoises_close_to_the_full_precision_one():
    reference = denoise_three_blocks(random_dit(CONFIG_TINY.dit, seed=0, dtype=torch.float32))
    model = random_dit(CONFIG_TINY.dit, seed=0, dtype=torch.float32)
    quantise_linears_fp8(model)
    for got, want in zip(denoise_three_blocks(model), reference):
        assert relative_error(got, want) < 0.1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fp8_kernel_matches_the_emulation_on_gpu():
    torch.manual_seed(0)
    linear = nn.Linear(512, 256).cuda().to(torch.bfloat16)
    layer = Fp8Linear(linear)
    x = torch.randn(300, 512, device="cuda", dtype=torch.bfloat16)
    kernel = layer(x)
    emulated = Fp8Linear(linear.cpu().float())(x.cpu().float())
    assert relative_error(kernel.cpu(), emulated) < 0.02
    assert relative_error(kernel.cpu(), linear.cpu().float()(x.cpu().float())) < 0.06
