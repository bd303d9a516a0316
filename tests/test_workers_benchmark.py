"""The pure parts of `benchmarks.workers_speed`: the render command lines it
runs, the catalogue of recordings it writes, and the figures it reads from a
run report and the command's timed output lines."""

from __future__ import annotations

import sys
import wave
from pathlib import Path

import pytest

from avatar_batch import batch
from benchmarks.workers_speed import (
    STOP_GRACE_S,
    Setup,
    case_limit_s,
    compare,
    finished_at_s,
    first_video_s,
    parse_args,
    render_argv,
    same_frames,
    summarise,
    write_catalogue,
)

LINES = [
    (0.5, "2026-12-02T16:12:05Z plan: 3 to render, 0 up to date, 0 to retire"),
    (1.0, "2026-12-02T16:12:05Z [1/3] bench-0/en (51911b0a8ea5f976) started"),
    (40.2, "2026-12-02T16:12:45Z worker w0: idle"),
    (40.25, "2026-12-02T16:12:45Z   bench-1/en: failed in 39.0 s: out of memory"),
    (41.0, "2026-12-02T16:12:46Z   bench-0/en: fallback in 40.0 s"),
    (61.04, "2026-12-02T16:13:06Z   bench-2/en: completed in 60.0 s"),
    (62.0, "Loading weights: 100%|##########| 424/424 bench-9/en: completed in 1"),  # not a progress line
]


def report(jobs, wall_s=60.0, outcome="ok"):
    return {
        "outcome": outcome,
        "wall_s": wall_s,
        "jobs": jobs,
        "workers": [{"worker": "w0", "busy_s": 50.0, "utilisation": 0.833, "jobs": 2, "where": "GPU 0", "died": None}],
        "resources": {"peak_gpu_gib": 51.2, "placements": [{"offload": "none"}]},
    }


def job(entry, status, frames=96, failure=None):
    telemetry = {"frames": frames, "generation_fps": 40.0, "load_s": 20.0} if status == "completed" else {}
    return {"entry_id": entry, "status": status, "failure": failure, "telemetry": telemetry}


def test_flags_name_only_what_was_set():
    assert Setup(Path("/w")).flags() == ["--renderer", "liveavatar", "--weights", "/w", "--preset", "quick"]
    setup = Setup(Path("/w"), "standard", "384*256", "fp8", 64.0, "0")
    assert setup.flags()[6:] == ["--size", "384*256", "--precision", "fp8", "--gpus", "0", "--gpu-memory", "64"]


def test_render_argv_is_the_plain_cli_with_the_worker_count():
    argv = render_argv(Path("/p/q.yaml"), Path("/lib"), Setup(Path("/w"), gpus="0"), 2)
    assert argv[:7] == [sys.executable, "-m", "avatar_batch", "render", "/p/q.yaml", "--library", "/lib"]
    assert argv[7] == "--plain" and argv[-4:] == ["--gpus", "0", "--workers", "2"]


def test_finished_and_first_video_times_come_from_the_job_lines():
    assert finished_at_s(LINES) == [40.25, 41.0, 61.04]
    assert first_video_s(LINES) == 61.0  # neither the failed job nor the still fallback counts
    assert first_video_s(LINES[:3]) is None


def test_summary_counts_model_frames_over_the_report_wall():
    jobs = [job("bench-0", "completed"), job("bench-1", "failed", failure="out of memory"), job("bench-2", "completed")]
    run = summarise(2, report(jobs), LINES, 75.04, stopped=False)
    assert run["frames"] == 192 and run["jobs_completed"] == 2
    assert run["frames_per_s"] == 3.2 and run["jobs_per_min"] == 2.0
    assert run["jobs_failed"] == ["bench-1: out of memory"]
    assert run["first_video_s"] == 61.0 and run["job_finished_s"] == [40.2, 41.0, 61.0]
    assert run["command_s"] == 75.0 and run["stopped_at_deadline"] is False
    assert run["per_worker"][0]["utilisation"] == 0.833
    assert run["peak_gpu_gib"] == 51.2 and run["placements"] == [{"offload": "none"}]
    assert run["generation_fps_per_job"] == [40.0, 40.0]


def test_summary_without_a_report_keeps_the_last_lines():
    run = summarise(1, None, LINES[:2], 3.0, stopped=True)
    assert run["stopped_at_deadline"] is True
    assert run["error"].startswith("no run report: 2026-12-02T16:12:05Z plan: 3 to render")


def test_compare_gives_ratios_only_where_both_cases_have_figures():
    one = {"frames_per_s": 2.0, "jobs_per_min": 1.0}
    assert compare(one, {"frames_per_s": 3.0, "jobs_per_min": 1.5}) == {
        "frames_per_s_ratio": 1.5,
        "jobs_per_min_ratio": 1.5,
    }
    assert compare(one, {"error": "not run"}) == {}


def test_parse_args_refuses_an_empty_benchmark():
    assert parse_args(["--gpu-memory", "64", "--gpus", "0"]).gpu_memory == 64.0
    with pytest.raises(SystemExit):
        parse_args(["--jobs", "0"])


def test_catalogue_has_one_distinct_recording_of_whole_clips_per_job(tmp_path):
    catalogue = write_catalogue(tmp_path / "project", jobs=5, clips=2)
    loaded = batch.load(batch.RunOptions(catalogue_path=catalogue, check_voices=False))
    assert [entry.id for entry in loaded.entries] == [f"bench-{i}" for i in range(5)]
    recordings = [entry.audio["en"] for entry in loaded.entries]
    assert len({path.read_bytes() for path in recordings}) == 5
    with wave.open(str(recordings[0])) as wav:
        assert wav.getnframes() / wav.getframerate() == pytest.approx(2 * 48 / 25 - 0.1, abs=1e-3)


def test_frames_are_compared_over_the_jobs_both_cases_finished():
    one = {"a": "h1", "b": "h2", "c": "h3"}
    assert same_frames(one, {"a": "h1", "b": "h2"}) == {"compared": 2, "identical": True, "different": []}
    assert same_frames(one, {"a": "h1", "c": "xx"}) == {"compared": 2, "identical": False, "different": ["c"]}
    assert same_frames(one, {}) == {"compared": 0, "identical": None, "different": []}


def test_each_case_gets_an_equal_share_and_both_end_before_the_deadline():
    deadline_s = 200.0
    first = case_limit_s(deadline_s, 2)
    assert first == (deadline_s - STOP_GRACE_S) / 2
    left_s = deadline_s - (first + STOP_GRACE_S)  # the first case was stopped and took its whole grace
    second = case_limit_s(left_s, 1)
    assert second == pytest.approx(first - STOP_GRACE_S) and second + STOP_GRACE_S == pytest.approx(left_s)
