"""The offload benchmark's pure parts: case parsing and a portrait of the case's aspect."""

from __future__ import annotations

from PIL import Image

from benchmarks.render_offload import parse_case, write_portrait


def test_a_case_names_size_steps_precision_budget_and_optional_formats_and_offload():
    assert parse_case("704*384:4:bf16:none") == {
        "size": "704*384",
        "steps": 4,
        "precision": "bf16",
        "budget_gib": None,
        "weight_format": "auto",
        "kv_format": "bf16",
        "offload_asked": "auto",
        "cuda_graphs": False,
    }
    assert parse_case("384*256:3:fp8:24:int8")["budget_gib"] == 24.0
    assert parse_case("384*256:3:fp8:24:int8")["weight_format"] == "int8"
    assert parse_case("704*384:4:bf16:48:int8:fp8")["kv_format"] == "fp8"
    assert parse_case("704*384:4:bf16:none:auto:bf16:model")["offload_asked"] == "model"
    assert parse_case("704*384:4:fp8:none:auto:bf16:auto:graphs")["cuda_graphs"]


def test_ratios_are_to_the_whole_gpu_run_with_default_formats_and_offload():
    import argparse

    from benchmarks.render_offload import _document

    def run(budget, fps, weight_format="auto", offload="auto", graphs=""):
        case = parse_case(f"704*384:4:bf16:{budget}:{weight_format}:bf16:{offload}:{graphs}")
        return {**case, "fps": fps, "device": "gpu"}

    runs = [run("none", 20.0, offload="model"), run("none", 15.0, graphs="graphs"), run("none", 10.0)]
    runs += [run(48, 8.0, "int8"), run(48, 5.0)]
    document = _document(argparse.Namespace(), runs)
    assert [r["ratio_to_unconstrained"] for r in runs] == [2.0, 1.5, 1.0, 0.8, 0.5]
    torch_bytecode = next(row for row in document["python_bytecode"] if row["package"] == "torch")
    assert torch_bytecode["modules"] > 100 and 0 <= torch_bytecode["without_bytecode"] <= torch_bytecode["modules"]


def test_the_portrait_has_the_cases_width_and_height(tmp_path):
    for size, expected in (("704*384", (704, 384)), ("384*256", (384, 256))):
        out = write_portrait(size, tmp_path / f"{expected[0]}.png")
        with Image.open(out) as image:
            assert image.size == expected and image.mode == "RGB"


def test_cold_then_warm_runs_each_case_twice_on_an_emptied_cache(tmp_path):
    import argparse

    from benchmarks.render_offload import _passes

    stale = tmp_path / "cc" / "case1"
    stale.mkdir(parents=True)
    (stale / "dit-old.bin").write_bytes(b"old")
    args = argparse.Namespace(
        cases=["a", "b"], compile_cache=str(tmp_path / "cc"), cold_then_warm=True, scratch=str(tmp_path)
    )
    folders = [str(tmp_path / "cc" / "case0"), str(tmp_path / "cc" / "case1")]
    assert _passes(args) == [(0, "a", folders[0]), (0, "a", folders[0]), (1, "b", folders[1]), (1, "b", folders[1])]
    assert not stale.exists()  # the first pass of each case is cold
    once = argparse.Namespace(cases=["a"], compile_cache=None, cold_then_warm=False, scratch=str(tmp_path))
    assert _passes(once) == [(0, "a", None)]


def test_compile_seconds_sums_dynamos_timed_stages():
    import torch

    from benchmarks.render_offload import compile_seconds

    before = compile_seconds().get("_compile.compile_inner", 0.0)
    torch._dynamo.reset()
    compiled = torch.compile(lambda x: x * 2 + 1, backend="eager")  # dynamo's stages, no code generation
    assert torch.equal(compiled(torch.ones(3)), torch.full((3,), 3.0))
    seconds = compile_seconds()
    assert seconds["_compile.compile_inner"] >= before
    assert all(isinstance(value, float) and value >= 0 for value in seconds.values())
