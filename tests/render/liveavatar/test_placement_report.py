"""The planner's answers in words: the int8 / int4 hint where weights stream (placement_report.py)."""

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


def gib_figures(offer: str) -> list[float]:
    return [float(word) for word in offer.split() if word.replace(".", "").isdigit()]


def test_streamed_bf16_weights_get_the_int8_then_int4_hint_with_fewer_bytes_per_wave():
    found = summary(settings(gpu_memory_gib=24.0), CONFIG_14B, h200(24.0))
    assert found["placement"]["offload"] == "blocks" and found["placement"]["weight_format"] == "bf16"
    int8, int4 = found["hint"].split("; ")
    assert int8.startswith("--weight-format int8 would keep 14/40 ") and "(1.3 % relative L2" in int8
    then_gib, now_gib = gib_figures(int8)
    assert 0 < then_gib < now_gib / 2  # 8-bit layers: half the bytes each, and more of them resident
    # int4 keeps the whole DiT on the card: nothing moves per wave.
    assert int4.startswith("--weight-format int4 would keep 40/40 ") and gib_figures(int4) == [0.0, now_gib]


def test_int8_weights_that_still_stream_get_the_int4_hint_and_int4_weights_none():
    int8 = summary(settings(gpu_memory_gib=24.0, weight_format="int8"), CONFIG_14B, h200(24.0))
    assert int8["placement"]["offload"] == "blocks" and int8["hint"].startswith("--weight-format int4 would keep 40/40")
    int4 = summary(settings(gpu_memory_gib=24.0, weight_format="int4"), CONFIG_14B, h200(24.0))
    assert int4["placement"]["offload"] == "model" and "hint" not in int4


def test_no_hint_where_int8_would_save_less_than_half_the_bytes():
    # 704*384 within 48 GiB: int8 keeps 12 layers resident but moves ~0.6 of the bytes per wave;
    # int4 is not offered past a format that does not pay (the run is bound by its kernels).
    found = summary(settings(size="704*384", sample_steps=4, gpu_memory_gib=48.0), CONFIG_14B, h200(48.0))
    assert found["placement"]["offload"] == "blocks" and "hint" not in found


def test_no_hint_when_nothing_streams():
    assert "hint" not in summary(settings(), CONFIG_14B, h200(None))


def test_no_hint_on_a_cpu():
    cpu = Machine(None, host_available_bytes=HOST_BYTES)
    assert "hint" not in summary(settings(offload="blocks"), CONFIG_14B, cpu)
