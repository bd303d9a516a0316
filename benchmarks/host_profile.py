"""Where the host's wall time goes in one stretch of work: cProfile's top functions.

The GPU runs asynchronously, so a function's time here includes whatever it
waited for on the device (a synchronising copy, a launch queue that was full):
that is the point. It answers "which Python call was the first video (or a
steady job) waiting in?", which the GPU timeline cannot.
"""

from __future__ import annotations

import cProfile
import pstats
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
TOP = 30


def _rows(stats: pstats.Stats, key: int, top: int) -> list[dict[str, Any]]:
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]  # {(file, line, name): (cc, nc, tt, ct, callers)}
    ordered = sorted(table.items(), key=lambda item: item[1][key], reverse=True)[:top]
    return [
        {
            "function": f"{file.rsplit('/', 2)[-1] if '/' in file else file}:{line}({name})",
            "calls": calls,
            "own_s": round(own_s, 3),
            "cumulative_s": round(cum_s, 3),
        }
        for (file, line, name), (_, calls, own_s, cum_s, _) in ordered
    ]


def profiled(work: Callable[[], T], top: int = TOP) -> tuple[T, dict[str, list[dict[str, Any]]]]:
    """Run `work` under cProfile; its result, and the `top` functions by cumulative and by own time."""
    profile = cProfile.Profile()
    result = profile.runcall(work)
    stats = pstats.Stats(profile)
    return result, {"by_cumulative": _rows(stats, 3, top), "by_own": _rows(stats, 2, top)}
