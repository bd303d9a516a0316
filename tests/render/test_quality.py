"""The quality-budget metrics: relative L2 of latents, PSNR of uint8 frames."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from avatar_batch.render.quality import psnr_db, rel_l2


def test_rel_l2_is_the_error_norm_over_the_reference_norm():
    want = np.array([3.0, 4.0])  # norm 5
    assert rel_l2(want, want) == 0.0
    assert rel_l2([3.0, 4.5], want) == pytest.approx(0.1)
    assert rel_l2(2 * want, want) == pytest.approx(1.0)
    assert rel_l2(-want, want) == pytest.approx(2.0)


def test_rel_l2_accepts_host_tensors_and_is_scale_free():
    generator = torch.Generator().manual_seed(0)
    want = torch.randn(16, 3, 8, 8, generator=generator)
    got = want + 0.05 * torch.randn(16, 3, 8, 8, generator=generator)
    assert rel_l2(got, want) == pytest.approx(rel_l2(1000 * got, 1000 * want), rel=1e-6)
    assert rel_l2(got, want) == pytest.approx(0.05, rel=0.15)
    # bf16 tensors go through .float() first: the metric itself never rounds to bf16
    assert rel_l2(got.bfloat16().float(), want) > 0


@pytest.mark.parametrize(("got", "want", "message"), [([1.0], [0.0], "all zeros"), ([1.0, 2.0], [1.0], "shapes")])
def test_rel_l2_refuses_what_has_no_relative_error(got, want, message):
    with pytest.raises(ValueError, match=message):
        rel_l2(got, want)


def test_psnr_of_identical_frames_is_infinite():
    frames = np.random.default_rng(0).integers(0, 256, size=(4, 8, 8, 3), dtype=np.uint8)
    assert psnr_db(frames, frames.copy()) == math.inf


def test_psnr_matches_the_definition():
    want = np.full((2, 4, 4, 3), 100, dtype=np.uint8)
    got = want.copy()
    got[0, 0, 0, 0] = 110  # one of 96 values off by 10: MSE = 100 / 96
    assert psnr_db(got, want) == pytest.approx(10 * math.log10(255**2 * 96 / 100))
    assert psnr_db(np.full_like(want, 255), np.zeros_like(want)) == 0.0  # error as large as the peak
    # no wrap-around in uint8: 0 against 255 is 255 apart, not 1
    assert psnr_db(np.zeros((1, 1), np.uint8), np.full((1, 1), 255, np.uint8)) == 0.0


@pytest.mark.parametrize(
    ("got", "want", "message"),
    [
        (np.zeros((2, 2), np.float32), np.zeros((2, 2), np.uint8), "float32"),
        (np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8), "shapes"),
    ],
)
def test_psnr_refuses_other_dtypes_and_shapes(got, want, message):
    with pytest.raises(ValueError, match=message):
        psnr_db(got, want)
