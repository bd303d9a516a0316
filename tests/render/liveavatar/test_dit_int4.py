"""4-bit stored DiT linears with a per-group offset and step (dit/quant.py `Int4Linear`)."""

import pytest
import torch
from torch import nn

from avatar_batch.render.liveavatar.dit.quant import INT4_GROUP, Int4Linear, check_formats, quantise_linears

OUT, IN = 6, 2 * INT4_GROUP


def linear_with(weight: torch.Tensor, bias: bool = True) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias)
    layer.weight.data.copy_(weight)
    return layer


def test_a_weight_on_the_16_level_grid_of_its_group_is_stored_exactly():
    # Every group spans low .. low + 15 * step with bf16-exact low and step: codes = the grid indices.
    torch.manual_seed(0)
    codes = torch.randint(0, 16, (OUT, IN))
    codes[:, 0], codes[:, INT4_GROUP] = 0, 15  # each group reaches both ends of its range
    low = torch.tensor([-1.0, -0.5, 0.25, -2.0, -0.125, 0.0]).repeat_interleave(2).view(OUT, 2)
    step = torch.tensor([0.125, 0.25, 0.0625, 0.5, 0.03125, 0.25]).repeat_interleave(2).view(OUT, 2)
    weight = low.repeat_interleave(INT4_GROUP, 1) + codes * step.repeat_interleave(INT4_GROUP, 1)
    stored = Int4Linear(linear_with(weight))
    assert stored.weight_packed.dtype == torch.uint8 and stored.weight_packed.shape == (OUT, IN // 2)
    assert stored.weight_low.shape == stored.weight_step.shape == (OUT, 2)
    # Column 2j sits in the low nibble, 2j + 1 in the high one.
    assert torch.equal(stored.weight_packed & 0xF, codes[:, 0::2].to(torch.uint8))
    assert torch.equal(stored.weight_packed >> 4, codes[:, 1::2].to(torch.uint8))
    torch.testing.assert_close(stored.weight(torch.float32), weight, rtol=0, atol=0)


def test_the_output_is_the_product_with_the_expanded_weight():
    torch.manual_seed(1)
    plain = nn.Linear(IN, OUT)
    stored = Int4Linear(plain)
    x = torch.randn(3, 5, IN)
    want = torch.nn.functional.linear(x, stored.weight(torch.float32), plain.bias)
    torch.testing.assert_close(stored(x), want, rtol=1e-5, atol=1e-5)
    assert Int4Linear(nn.Linear(IN, OUT, bias=False))(x).shape == (3, 5, OUT)


def test_the_rounding_error_is_at_most_half_a_step_per_weight():
    torch.manual_seed(2)
    plain = nn.Linear(IN, 32)
    stored = Int4Linear(plain)
    error = (stored.weight(torch.float32) - plain.weight.data).abs()
    half_step = stored.weight_step.float().repeat_interleave(INT4_GROUP, 1) / 2
    assert (error <= half_step * 1.02 + 1e-7).all()  # bf16 rounding of low and step adds a little


def test_bf16_activations_stay_close_to_the_full_precision_linear():
    # Gaussian weights at 128 columns per group: relative L2 of the weight is about 0.10.
    torch.manual_seed(3)
    plain = nn.Linear(IN, 64)
    stored = Int4Linear(plain)
    x = torch.randn(16, IN)
    got, want = stored(x.bfloat16()), plain(x).detach()
    assert got.dtype == torch.bfloat16
    assert 0.03 < ((got.float() - want).norm() / want.norm()).item() < 0.15


def test_a_row_narrower_than_a_group_is_one_group_and_an_odd_one_is_refused():
    assert Int4Linear(nn.Linear(96, 4)).weight_step.shape == (4, 1)
    with pytest.raises(ValueError, match="odd"):
        Int4Linear(nn.Linear(7, 4))


def test_quantise_linears_stores_int4_under_bf16_compute_only():
    model = nn.Sequential(nn.Linear(IN, IN), nn.GELU(), nn.Linear(IN, 8))
    assert quantise_linears(model, "int4", "bf16") == 2
    assert all(isinstance(model[i], Int4Linear) for i in (0, 2))
    with pytest.raises(ValueError, match="fp8 compute needs fp8 weights"):
        check_formats("int4", "fp8")
