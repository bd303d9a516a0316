"""Which torch operators a first job spends its extra host time in.

A warm first job's sampling still takes about twice the steady state's, and dynamo's
tracing explains only half of the difference. cProfile cannot say where the rest goes:
it stops at the C++ boundary (and slows dynamo down). torch.profiler's CPU activity
times each aten operator's own host work, which includes what the libraries under it do
on the first use of a shape (cuDNN building an attention plan, cuBLAS choosing a
kernel, the allocator reserving device memory). An operator's own time in the first
job minus its own time in a later job of the same shape is what only the first job pays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
TOP = 15
US_PER_S = 1e6


def op_seconds(work: Callable[[], T]) -> tuple[T, dict[str, dict[str, float]]]:
    """Run `work` under torch.profiler (CPU activity); its result, and each operator's
    own host seconds and call count."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        result = work()
    ops = {
        event.key: {"own_s": event.self_cpu_time_total / US_PER_S, "calls": float(event.count)}
        for event in prof.key_averages()
    }
    return result, ops


def first_use_costs(
    first: dict[str, dict[str, float]], steady: dict[str, dict[str, float]], top: int = TOP
) -> list[dict[str, Any]]:
    """The `top` operators by own seconds in `first` beyond those in `steady` (pure)."""
    rows = []
    for name, spent in first.items():
        before = steady.get(name, {"own_s": 0.0, "calls": 0.0})
        rows.append(
            {
                "op": name,
                "extra_s": round(spent["own_s"] - before["own_s"], 4),
                "first_s": round(spent["own_s"], 4),
                "steady_s": round(before["own_s"], 4),
                "first_calls": int(spent["calls"]),
                "steady_calls": int(before["calls"]),
            }
        )
    rows.sort(key=lambda row: row["extra_s"], reverse=True)
    return rows[:top]
