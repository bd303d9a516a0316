"""Where a GPU job's time went, from a torch.profiler trace: kernels, copies each way, and
how much of the host-to-GPU copying hid under kernels.

A streamed placement is fast when its copies run while kernels run. Bytes per frame
alone cannot tell a run bound by the link (copies busy all along, kernels waiting)
from one bound elsewhere (copies idle part of the time, kernels too): this summary can.
All intervals are (start, end) in microseconds, as the profiler reports them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Interval = tuple[float, float]
US_PER_S = 1e6
H2D_PREFIX = "Memcpy HtoD"
D2H_PREFIX = "Memcpy DtoH"


def union(intervals: Iterable[Interval]) -> list[Interval]:
    """Disjoint, sorted intervals covering the same time (kernels of several streams overlap)."""
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def length_us(intervals: Iterable[Interval]) -> float:
    return sum(end - start for start, end in union(intervals))


def overlap_us(a: Iterable[Interval], b: Iterable[Interval]) -> float:
    """Time covered by both a and b."""
    first, second = union(a), union(b)
    both, i, j = 0.0, 0, 0
    while i < len(first) and j < len(second):
        start, end = max(first[i][0], second[j][0]), min(first[i][1], second[j][1])
        both += max(0.0, end - start)
        if first[i][1] < second[j][1]:
            i += 1
        else:
            j += 1
    return both


def summarise(kernels: list[Interval], h2d: list[Interval], d2h: list[Interval]) -> dict[str, Any]:
    """Busy seconds of each kind over the traced span, the part of the host-to-GPU copying
    that ran under kernels, and the time the GPU did nothing at all."""
    everything = kernels + h2d + d2h
    if not everything:
        return {"span_s": 0.0}
    span_us = max(end for _, end in everything) - min(start for start, _ in everything)
    kernel_us, h2d_us = length_us(kernels), length_us(h2d)
    hidden_us = overlap_us(h2d, kernels)
    seconds = {
        "span_s": span_us,
        "kernels_busy_s": kernel_us,
        "h2d_busy_s": h2d_us,
        "d2h_busy_s": length_us(d2h),
        "h2d_under_kernels_s": hidden_us,
        "h2d_alone_s": h2d_us - hidden_us,
        "idle_s": span_us - length_us(everything),
    }
    summary: dict[str, Any] = {name: round(value / US_PER_S, 4) for name, value in seconds.items()}
    summary["kernels_share"] = round(kernel_us / span_us, 3) if span_us else 0.0
    summary["h2d_share"] = round(h2d_us / span_us, 3) if span_us else 0.0
    return summary


def gpu_intervals(events: Iterable[Any]) -> tuple[list[Interval], list[Interval], list[Interval]]:
    """(kernels, host-to-GPU copies, GPU-to-host copies) of a profiler's events
    (`prof.events()`): the device-side ones, told apart by the profiler's names
    ("Memcpy HtoD (Pinned -> Device)"); copies within the GPU count as kernels."""
    from torch.autograd import DeviceType

    kernels: list[Interval] = []
    h2d: list[Interval] = []
    d2h: list[Interval] = []
    for event in events:
        if event.device_type != DeviceType.CUDA:
            continue
        interval = (float(event.time_range.start), float(event.time_range.end))
        if event.name.startswith(H2D_PREFIX):
            h2d.append(interval)
        elif event.name.startswith(D2H_PREFIX):
            d2h.append(interval)
        else:  # kernels, and copies within the GPU
            kernels.append(interval)
    return kernels, h2d, d2h


def top_kernels(events: Iterable[Any], count: int = 12) -> list[dict[str, Any]]:
    """The kernels that took the most GPU time, summed over their launches."""
    from torch.autograd import DeviceType

    totals: dict[str, list[float]] = {}
    for event in events:
        if event.device_type == DeviceType.CUDA and not event.name.startswith((H2D_PREFIX, D2H_PREFIX)):
            entry = totals.setdefault(event.name, [0.0, 0])
            entry[0] += event.time_range.end - event.time_range.start
            entry[1] += 1
    ranked = sorted(totals.items(), key=lambda item: item[1][0], reverse=True)[:count]
    return [{"name": name[:120], "total_ms": round(us / 1e3, 2), "launches": int(n)} for name, (us, n) in ranked]
