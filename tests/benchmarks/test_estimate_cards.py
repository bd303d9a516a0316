"""The paper estimate's arithmetic: bounds from compute and from the host link."""

from __future__ import annotations

import pytest

from benchmarks.estimate_cards import CARDS, Card, estimate, estimates

CARD = Card("test card", 24, 100.0, None, 20.0)


def test_bounds_are_the_harmonic_sum_and_the_smaller_of_compute_and_link():
    bounds = estimate(CARD, resident_fps=10.0, h2d_gib_per_frame=4e9 / 2**30, tflops_ratio=0.5)
    assert bounds["compute_bound_fps"] == 5.0
    assert bounds["link_bound_fps"] == pytest.approx(5.0, abs=0.01)  # 20 GB/s over 4 GB per frame
    assert bounds["fps_high"] == pytest.approx(5.0, abs=0.01)
    assert bounds["fps_low"] == pytest.approx(2.5, abs=0.01)


def test_nothing_streamed_is_compute_bound():
    bounds = estimate(CARD, resident_fps=10.0, h2d_gib_per_frame=0.0, tflops_ratio=0.5)
    assert bounds["fps_low"] == bounds["fps_high"] == 5.0


def test_each_card_takes_the_streamed_run_of_its_budget_and_the_fastest_resident_run():
    runs = [
        {"size": "704*384", "precision": "bf16", "budget_gib": None, "offload": "none", "fps": 10.0},
        {"size": "704*384", "precision": "bf16", "budget_gib": 80.0, "offload": "model", "fps": 14.0},
        {
            "size": "704*384",
            "precision": "bf16",
            "budget_gib": 24.0,
            "offload": "blocks",
            "fps": 9.0,
            "h2d_gib_per_frame": 6.0,
        },
        {"size": "704*384", "precision": "bf16", "budget_gib": 40.0, "error": "out of memory"},
    ]
    rows = estimates(runs)
    assert [(r["card"], r["budget_gib"]) for r in rows] == [(CARDS[0].name, 24)]
    assert rows[0]["from_h200"] == {"resident_fps": 14.0, "h2d_gib_per_frame": 6.0}


def test_a_case_measured_in_two_calls_is_estimated_once_from_the_later_run():
    streamed = {"size": "384*256", "precision": "bf16", "budget_gib": 24.0, "offload": "blocks"}
    runs = [
        {"size": "384*256", "precision": "bf16", "budget_gib": None, "offload": "none", "fps": 60.0},
        {**streamed, "weight_format": "int8", "fps": 41.0, "h2d_gib_per_frame": 1.0},
        {**streamed, "weight_format": "int8", "fps": 43.0, "h2d_gib_per_frame": 0.9},
        {**streamed, "weight_format": "auto", "fps": 18.0, "h2d_gib_per_frame": 2.4},
        {**streamed, "weight_format": "int8", "kv_format": "fp8", "fps": None, "error": "timed out"},
    ]
    rows = estimates(runs)
    assert [(r["weight_format"], r["kv_format"], r["from_h200"]["h2d_gib_per_frame"]) for r in rows] == [
        ("int8", "bf16", 0.9),
        ("auto", "bf16", 2.4),
    ]
