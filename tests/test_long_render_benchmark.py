"""The pure helpers of benchmarks/long_render_memory.py: reading VmRSS, the slope and the summary.

No render runs here (the benchmark itself takes minutes); these are the parts whose
mistakes would make a leak look flat or a flat run look like a leak.
"""

from __future__ import annotations

import weakref

import pytest

from benchmarks.long_render_memory import (
    FLAT_GROWTH_BYTES,
    every_nth,
    machine_facts,
    pull_sampling_each_clip,
    slope_per_clip,
    summarise,
    vm_rss_bytes,
)

STATUS = "Name:\tpython3\nVmPeak:\t  900000 kB\nVmHWM:\t  600000 kB\nVmRSS:\t  512000 kB\nThreads:\t2\n"
MIB = 2**20


def test_vm_rss_is_read_in_bytes_from_the_vmrss_line_not_the_peak():
    assert vm_rss_bytes(STATUS) == 512_000 * 1024


def test_a_status_without_vmrss_is_an_error_not_zero():
    with pytest.raises(ValueError, match="VmRSS"):
        vm_rss_bytes("Name:\tpython3\n")


def test_slope_of_a_line_is_its_step_and_of_a_constant_zero():
    assert slope_per_clip([10, 13, 16, 19]) == pytest.approx(3.0)
    assert slope_per_clip([7] * 50) == 0.0
    with pytest.raises(ValueError):
        slope_per_clip([1])


def test_slope_ignores_symmetric_noise_but_not_a_small_steady_leak():
    noise = [(1 if i % 2 else -1) * 64 * 1024 for i in range(900)]  # +-64 KiB of allocator jitter
    flat = [500 * MIB + n for n in noise]
    leaking = [500 * MIB + n + 1024 * i for i, n in enumerate(noise)]  # 1 KiB a clip
    assert abs(slope_per_clip(flat)) < 1
    assert slope_per_clip(leaking) == pytest.approx(1024, rel=0.01)


def test_summary_leaves_out_the_warm_up_clips_and_judges_flatness_by_the_fitted_growth():
    warm_up = [100 * MIB + 10 * MIB * i for i in range(100)]  # conditioning, the refresh: growth by design
    steady = [1200 * MIB] * 900
    summary = summarise(warm_up + steady, first_clip=101)
    assert (summary["from_clip"], summary["clips"]) == (101, 900)
    assert summary["min_mib"] == summary["max_mib"] == 1200.0
    assert summary["slope_kib_per_clip"] == 0.0 and summary["flat"] is True

    leak = [1200 * MIB + 8 * 1024 * i for i in range(900)]  # 8 KiB a clip: 7 MiB over 900 clips
    summary = summarise(warm_up + leak, first_clip=101)
    assert summary["slope_kib_per_clip"] == pytest.approx(8.0)
    assert summary["fitted_growth_mib"] * MIB > FLAT_GROWTH_BYTES and summary["flat"] is False


def test_every_nth_keeps_the_first_every_tenth_and_the_last_clip():
    series = list(range(1, 26))  # the value of clip c is c
    assert every_nth(series) == [[1, 1], [10, 10], [20, 20], [25, 25]]
    assert every_nth(list(range(1, 21))) == [[1, 1], [10, 10], [20, 20]]


def test_machine_facts_name_the_cpu_and_the_load():
    facts = machine_facts()
    assert facts["cpu"] and facts["cores"] >= 1 and len(facts["load_average_1_5_15"]) == 3


class Frame:
    """Stands in for an (H, W, 3) frame; weak-referenceable so the test can see it is freed."""


def test_pulling_samples_once_per_whole_clip_and_keeps_no_frame():
    pulled: list[weakref.ref] = []

    def stream():
        for _ in range(30):  # 2 whole 12-frame clips and a short last one
            frame = Frame()
            pulled.append(weakref.ref(frame))
            yield frame

    allocated = iter([111, 222])
    samples = pull_sampling_each_clip(stream(), 12, 3, lambda: next(allocated))
    assert (samples.frames, samples.count) == (30, 2)
    assert samples.series(samples.gpu_allocated_bytes) == [111, 222]
    assert all(rss > 0 for rss in samples.series(samples.rss_bytes))
    assert samples.at_s[0] <= samples.at_s[1]
    assert len(pulled) == 30 and all(ref() is None for ref in pulled)
