"""benchmarks/int4_expand.py on the CPU at tiny shapes: both packings expand to the same weight."""

import json

import torch

from avatar_batch.render.liveavatar.dit.quant import Int4Linear
from benchmarks import int4_expand


def test_the_halves_layout_expands_to_the_stored_weight():
    torch.manual_seed(0)
    stored = Int4Linear(torch.nn.Linear(256, 8))
    halves = int4_expand.Int4Halves(stored)
    assert halves.packed.shape == stored.weight_packed.shape
    assert torch.equal(halves.weight(torch.float32), stored.weight(torch.float32))


def test_the_script_writes_one_run_per_linear_and_wave(tmp_path):
    out = tmp_path / "int4.json"
    assert int4_expand.main(["--tiny", "--device", "cpu", "--iters", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    (run,) = result["runs"]
    assert run["layouts_agree"] and set(run["time_ms"]) == {"bf16", "int4", "int4_halves", "expand_only"}
    assert all(ms > 0 for ms in run["time_ms"].values()) and result["device"] == "cpu"
