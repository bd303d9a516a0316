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
CALLERS = 3  # the callers named beside each function of the by-own table


def _name(function: tuple[str, int, str]) -> str:
    file, line, name = function
    return f"{file.rsplit('/', 2)[-1] if '/' in file else file}:{line}({name})"


def _callers(callers: dict[Any, Any]) -> list[dict[str, Any]]:
    """The callers that spent the most of a function's time: a C function's own time
    (a dispatcher registration, a synchronising copy) says little without them."""
    # {caller: (cc, nc, tt, ct)} per caller
    ordered = sorted(callers.items(), key=lambda item: item[1][3], reverse=True)[:CALLERS]
    return [
        {"function": _name(caller), "calls": nc, "cumulative_s": round(ct, 3)} for caller, (_, nc, _, ct) in ordered
    ]


def _rows(stats: pstats.Stats, key: int, top: int, with_callers: bool = False) -> list[dict[str, Any]]:
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]  # {(file, line, name): (cc, nc, tt, ct, callers)}
    ordered = sorted(table.items(), key=lambda item: item[1][key], reverse=True)[:top]
    return [
        {
            "function": _name(function),
            "calls": calls,
            "own_s": round(own_s, 3),
            "cumulative_s": round(cum_s, 3),
            **({"callers": _callers(callers)} if with_callers else {}),
        }
        for function, (_, calls, own_s, cum_s, callers) in ordered
    ]


def profiled(work: Callable[[], T], top: int = TOP) -> tuple[T, dict[str, list[dict[str, Any]]]]:
    """Run `work` under cProfile; its result, and the `top` functions by cumulative time
    and by own time (those with their main callers)."""
    profile = cProfile.Profile()
    result = profile.runcall(work)
    stats = pstats.Stats(profile)
    return result, {"by_cumulative": _rows(stats, 3, top), "by_own": _rows(stats, 2, top, with_callers=True)}
