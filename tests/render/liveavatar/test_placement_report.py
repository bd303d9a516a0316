"""The planner's answers in words: the int8 hint where bf16 weights stream (placement_report.py)."""

from __future__ import annotations

from avatar_batch.core.records import RenderSettings
from avatar_batch.render.liveavatar.config import CONFIG_14B
from avatar_batch.render.liveavatar.memory_model import GIB
from avatar_batch.render.liveavatar.placement_plan import Machine
from avatar_batch.render.liveavatar.placement_report import summary

H200_BYTES = 141 * GIB
HOST_BYTES = 120 * GIB


def h200(budget_gib: float | None) -> Machine:
    budget = None if budget_gib is None else int(budget_gib * GIB)
    return Machine("NVIDIA H200", H200_BYTES, (9, 0), budget, HOST_BYTES)


def settings(**fields) -> RenderSettings:
    return RenderSettings(**{"renderer": "liveavatar", "size": "384*256", "sample_steps": 3, **fields})


def test_streamed_bf16_weights_get_the_int8_hint_with_fewer_bytes_per_wave():
    found = summary(settings(gpu_memory_gib=24.0), CONFIG_14B, h200(24.0))
    assert found["placement"]["offload"] == "blocks" and found["placement"]["weight_format"] == "bf16"
    hint = found["hint"]
    assert hint.startswith("--weight-format int8 would keep ")
    then_gib, now_gib = (float(word) for word in hint.split() if word.replace(".", "").isdigit())
    assert 0 < then_gib < now_gib / 2  # 8-bit layers: half the bytes each, and more of them resident


def test_no_hint_where_int8_would_save_less_than_half_the_bytes():
    # 704*384 within 48 GiB: int8 keeps 12 layers resident but moves ~0.6 of the bytes per wave
    found = summary(settings(size="704*384", sample_steps=4, gpu_memory_gib=48.0), CONFIG_14B, h200(48.0))
    assert found["placement"]["offload"] == "blocks" and "hint" not in found


def test_no_hint_when_nothing_streams_or_the_weights_are_already_8_bit():
    assert "hint" not in summary(settings(), CONFIG_14B, h200(None))
    int8 = summary(settings(gpu_memory_gib=24.0, weight_format="int8"), CONFIG_14B, h200(24.0))
    assert int8["placement"]["offload"] == "blocks" and "hint" not in int8


def test_no_hint_on_a_cpu():
    cpu = Machine(None, host_available_bytes=HOST_BYTES)
    assert "hint" not in summary(settings(offload="blocks"), CONFIG_14B, cpu)
