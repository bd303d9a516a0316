"""8-bit stored DiT linears computed in the activation dtype (dit/quant.py)."""

import pytest
import torch
from torch import nn

from avatar_batch.render.liveavatar.dit.quant import QuantisedLinear


def linear(bias: bool) -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(64, 48, bias=bias)


@pytest.mark.parametrize("weight_format", ["int8", "fp8"])
@pytest.mark.parametrize("bias", [True, False])
def test_the_output_is_the_product_with_the_dequantised_weight(weight_format, bias):
    plain = linear(bias)
    quantised = QuantisedLinear(plain, weight_format)
    x = torch.randn(5, 7, 64)
    dequantised = quantised.weight_q.float() * quantised.weight_scale  # (out, in)
    want = torch.nn.functional.linear(x, dequantised, plain.bias)
    torch.testing.assert_close(quantised(x), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("weight_format", "bound"), [("int8", 0.01), ("fp8", 0.05)])
def test_bf16_activations_stay_close_to_the_full_precision_linear(weight_format, bound):
    plain = linear(True)
    quantised = QuantisedLinear(plain, weight_format)
    x = torch.randn(4, 64)
    got = quantised(x.bfloat16()).float()
    want = plain(x).detach()
    assert got.dtype == torch.float32 and quantised(x.bfloat16()).dtype == torch.bfloat16
    assert ((got - want).norm() / want.norm()).item() < bound


def test_the_stored_weight_is_eight_bits_with_one_scale_per_output_row():
    quantised = QuantisedLinear(linear(False), "int8")
    assert quantised.weight_q.dtype == torch.int8 and quantised.weight_q.shape == (48, 64)
    assert quantised.weight_scale.shape == (48, 1) and quantised.weight_q.abs().amax(dim=1).eq(127).all()
