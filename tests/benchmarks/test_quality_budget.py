"""benchmarks/quality_budget.py: inputs, option settings, comparison, skips and resume;
one end-to-end run on the tiny checkpoint (CPU) through the real renderer."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from avatar_batch.render.liveavatar.checkpoint import write_tiny_checkpoint
from benchmarks import quality_budget as qb

REPO = Path(__file__).resolve().parents[2]
OPTIONS = {option.name: option for option in qb.OPTIONS}
JOB = qb.Job("/weights", "704*384", 4, 2, 420)


def test_each_option_changes_only_its_formats():
    plain = qb.settings_for(JOB, OPTIONS["plain"])
    assert (plain.precision, plain.resolved_weight_format, plain.kv_format) == ("bf16", "bf16", "bf16")
    assert (plain.size, plain.sample_steps, plain.seed, plain.weights_dir) == ("704*384", 4, 420, "/weights")
    end_to_end = qb.settings_for(JOB, OPTIONS["fp8-end-to-end"])
    assert (end_to_end.precision, end_to_end.resolved_weight_format, end_to_end.kv_format) == ("fp8", "fp8", "fp8")
    int8 = qb.settings_for(JOB, OPTIONS["weights-int8"])
    assert (int8.precision, int8.resolved_weight_format) == ("bf16", "int8")
    assert [o.name for o in qb.OPTIONS if o.fp8_compute] == ["fp8-compute", "fp8-end-to-end"]


def test_fp8_compute_is_skipped_on_a_cpu_with_the_reason(tmp_path):
    facts = qb.render_option(JOB, OPTIONS["fp8-compute"], tmp_path / "portrait.png", tmp_path)
    assert facts["device"] == "cpu" and "compute capability 8.9" in facts["skipped"]
    assert not list(tmp_path.iterdir())  # nothing loaded, nothing written


def _save(scratch: Path, name: str, latents: np.ndarray, frames: np.ndarray) -> None:
    np.save(scratch / f"{name}-latents.npy", latents)
    np.save(scratch / f"{name}-frames.npy", frames)


def test_options_are_compared_with_the_reference_and_the_budget_checked(tmp_path):
    latents = np.ones((16, 6, 2, 2), np.float32)
    frames = np.full((5, 4, 4, 3), 100, np.uint8)
    _save(tmp_path, "plain", latents, frames)
    _save(tmp_path, "kv-fp8", latents, frames)
    _save(tmp_path, "fp8-end-to-end", 1.1 * latents, frames + 1)
    outcomes = [
        {"name": "plain", "generation_fps": 1.0},
        {"name": "kv-fp8"},
        {"name": "fp8-end-to-end"},
        {"name": "fp8-compute", "skipped": "no fp8 here"},
        {"name": "weights-int8", "error": "boom"},
    ]
    plain, kv, e2e, skipped, failed = qb.summarise(tmp_path, outcomes)
    assert plain["generation_fps"] == 1.0 and "reference" in plain["note"] and "latents_rel_l2" not in plain
    assert skipped["skipped"] == "no fp8 here" and failed["error"] == "boom" and "latents_rel_l2" not in failed
    assert e2e["changes"] == {"precision": "fp8", "kv_format": "fp8"} and "no fp8 attention" in e2e["note"]
    assert kv["latents_rel_l2"] == 0.0 and kv["frames_identical"] and kv["frames_psnr_db"] is None
    assert e2e["latents_rel_l2"] == pytest.approx(0.1) and e2e["frames_psnr_db"] == pytest.approx(48.13, abs=0.01)
    assert (e2e["budget_rel_l2"], e2e["within_budget"]) == (0.08, False)
    assert "within_budget" not in kv
    json.dumps(qb.document(JOB, [plain, kv, e2e], "cmd"), allow_nan=False)  # strict JSON: no Infinity


def test_nothing_is_compared_without_the_reference(tmp_path):
    outcomes = [{"name": "plain", "error": "out of memory"}, {"name": "kv-fp8"}]
    assert not any("latents_rel_l2" in row for row in qb.summarise(tmp_path, outcomes))


def test_resume_continues_only_the_same_job(tmp_path):
    qb.check_scratch(tmp_path, JOB, resume=False)
    (tmp_path / "plain-latents.npy").write_bytes(b"")
    (tmp_path / "option-plain.json").write_text("{}")
    qb.check_scratch(tmp_path, JOB, resume=True)
    assert (tmp_path / "plain-latents.npy").exists()
    other = qb.Job("/weights", "384*256", 3, 2, 420)
    with pytest.raises(SystemExit, match="another job.*drop --resume"):
        qb.check_scratch(tmp_path, other, resume=True)
    qb.check_scratch(tmp_path, other, resume=False)  # starts again
    assert not (tmp_path / "plain-latents.npy").exists() and not (tmp_path / "option-plain.json").exists()


def test_the_recorded_command_leaves_out_what_does_not_change_the_result():
    argv = ["--weights", "/w", "--scratch", "/s", "--resume", "--size", "704*384", "--out=/o.json"]
    argv += ["--deadline-s", "540", "--options", "plain", "kv-fp8"]
    expected = "python -m benchmarks.quality_budget --weights /w --size 704*384 --options plain kv-fp8"
    assert qb.reproducing_command(argv) == expected


def test_results_are_named_after_the_device_and_the_day():
    day = datetime(2026, 12, 2, tzinfo=UTC)
    assert qb.result_path("NVIDIA H200", day).name == "quality-NVIDIA-H200-20261202.json"
    assert qb.result_path("cpu", day).parent == REPO / "benchmarks" / "results"


@pytest.mark.slow
def test_a_cpu_run_renders_compares_and_skips(tmp_path):
    weights = tmp_path / "weights"
    write_tiny_checkpoint(weights)
    out = tmp_path / "quality.json"
    # 64 px: the comparison and the skip do not depend on the size, and the renders cost a third of 128 px's.
    argv = [sys.executable, "-m", "benchmarks.quality_budget", "--weights", str(weights), "--size", "64*64"]
    argv += ["--steps", "1", "--clips", "1", "--scratch", str(tmp_path / "scratch"), "--out", str(out)]
    argv += ["--options", "weights-int8", "fp8-end-to-end"]
    # One thread, as in the renderer tests: on a busy 2-core machine two OpenMP threads per
    # tiny tensor made this run 2.5 times slower (measured).
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(argv, cwd=REPO, env=env, check=True, capture_output=True, text=True, timeout=1200)
    result = json.loads(out.read_text())
    plain, int8, e2e = result["options"]
    assert result["device"] == "cpu" and result["reference"] == "plain (float32)"
    assert (result["job"]["width"], result["job"]["height"], result["job"]["frames"]) == (64, 64, 45)
    assert plain["name"] == "plain" and plain["real_time_factor"] > 0 and plain["formats"]["compute"] == "fp32"
    assert int8["formats"]["weight_format"] == "int8" and 0 < int8["latents_rel_l2"] < 0.05
    assert math.isfinite(int8["frames_psnr_db"]) and int8["frames_psnr_db"] > 35
    assert "compute capability 8.9" in e2e["skipped"]
    assert result["command"].startswith("python -m benchmarks.quality_budget --weights")
