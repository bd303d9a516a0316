"""The operator profile names what a first call pays and a later one does not."""

from __future__ import annotations

import torch

from benchmarks.op_profile import first_use_costs, op_seconds


def test_op_seconds_counts_each_operator_once_per_call():
    x = torch.ones(64, 64)

    def work() -> torch.Tensor:
        return torch.mm(x, x) + torch.mm(x, x)

    result, ops = op_seconds(work)
    assert torch.equal(result, torch.full((64, 64), 128.0))
    assert ops["aten::mm"]["calls"] == 2 and ops["aten::mm"]["own_s"] >= 0
    assert ops["aten::add"]["calls"] == 1


def test_first_use_costs_rank_the_difference_and_keep_ops_the_steady_job_lacks():
    first = {
        "aten::mm": {"own_s": 1.0, "calls": 10.0},
        "aten::_cudnn_attention": {"own_s": 3.0, "calls": 4.0},
        "aten::fill_": {"own_s": 0.5, "calls": 2.0},
    }
    steady = {"aten::mm": {"own_s": 0.9, "calls": 10.0}, "aten::_cudnn_attention": {"own_s": 0.2, "calls": 4.0}}
    rows = first_use_costs(first, steady, top=2)
    assert [row["op"] for row in rows] == ["aten::_cudnn_attention", "aten::fill_"]
    assert rows[0] == {
        "op": "aten::_cudnn_attention",
        "extra_s": 2.8,
        "first_s": 3.0,
        "steady_s": 0.2,
        "first_calls": 4,
        "steady_calls": 4,
    }
    assert rows[1]["steady_calls"] == 0 and rows[1]["extra_s"] == 0.5
