"""The timeline summary of a traced job: interval arithmetic and the profiler's events
told apart (fake events stand in for a GPU trace)."""

from __future__ import annotations

from types import SimpleNamespace

from torch.autograd import DeviceType

from benchmarks.timeline import gpu_intervals, overlap_us, summarise, top_kernels, union


def test_union_merges_overlapping_and_touching_intervals():
    assert union([(5, 7), (0, 2), (1, 3), (3, 4), (9, 10)]) == [(0, 4), (5, 7), (9, 10)]


def test_overlap_counts_time_covered_by_both():
    assert overlap_us([(0, 10), (20, 30)], [(5, 25)]) == 10.0
    assert overlap_us([(0, 1)], [(2, 3)]) == 0.0


MS = 1000.0  # the profiler's unit is the microsecond


def ms(*pairs):
    return [(start * MS, end * MS) for start, end in pairs]


def test_a_link_bound_trace_shows_copies_busy_and_kernels_waiting():
    # Copies back to back over 100 ms; kernels run 30 ms of it, all under copies.
    summary = summarise(ms((10, 20), (40, 50), (70, 80)), ms((0, 50), (50, 100)), ms((95, 100)))
    assert summary["span_s"] == 0.1 and summary["h2d_share"] == 1.0 and summary["kernels_share"] == 0.3
    assert summary["h2d_under_kernels_s"] == 0.03 and summary["h2d_alone_s"] == 0.07
    assert summary["idle_s"] == 0.0 and summary["d2h_busy_s"] == 0.005


def test_idle_time_is_when_neither_kernels_nor_copies_run():
    summary = summarise(ms((0, 10)), ms((30, 40)), [])
    assert summary["idle_s"] == 0.02 and summary["h2d_under_kernels_s"] == 0.0
    assert summarise([], [], []) == {"span_s": 0.0}


def event(name, start, end, device=DeviceType.CUDA):
    return SimpleNamespace(name=name, device_type=device, time_range=SimpleNamespace(start=start, end=end))


def test_profiler_events_are_sorted_into_kernels_and_copies_each_way():
    events = [
        event("aten::mm", 0, 50, DeviceType.CPU),  # host side: not GPU time
        event("sm90_xmma_gemm_bf16", 0, 10),
        event("sm90_xmma_gemm_bf16", 20, 30),
        event("flash_fwd_kernel", 30, 35),
        event("Memcpy HtoD (Pinned -> Device)", 0, 40),
        event("Memcpy DtoH (Device -> Pinned)", 40, 45),
        event("Memcpy DtoD (Device -> Device)", 45, 46),
    ]
    kernels, h2d, d2h = gpu_intervals(events)
    assert kernels == [(0, 10), (20, 30), (30, 35), (45, 46)] and h2d == [(0, 40)] and d2h == [(40, 45)]
    ranked = top_kernels(events, count=2)
    assert ranked == [
        {"name": "sm90_xmma_gemm_bf16", "total_ms": 0.02, "launches": 2},
        {"name": "flash_fwd_kernel", "total_ms": 0.01, "launches": 1},
    ]
