"""The host profile names the function a stretch of work spent its time in."""

from __future__ import annotations

import time

from benchmarks.host_profile import profiled


def _sleeps() -> str:
    time.sleep(0.05)
    return "done"


def test_the_work_runs_once_and_its_slowest_function_leads():
    calls = []

    def work() -> str:
        calls.append(1)
        return _sleeps()

    result, top = profiled(work, top=5)
    assert result == "done" and calls == [1]
    assert set(top) == {"by_cumulative", "by_own"}
    cumulative = top["by_cumulative"]
    assert len(cumulative) <= 5
    assert any("_sleeps" in row["function"] and row["cumulative_s"] >= 0.05 for row in cumulative)
    assert top["by_own"][0]["own_s"] >= 0.05  # the sleep itself
    assert all(set(row) == {"function", "calls", "own_s", "cumulative_s"} for row in cumulative)
    sleep = top["by_own"][0]
    assert any("_sleeps" in caller["function"] and caller["cumulative_s"] >= 0.05 for caller in sleep["callers"])
