"""CI smoke render through the command line with the Live Avatar renderer on CPU.

`weights tiny` writes a random checkpoint in the official layout, then
`render questions/smoke.yaml --renderer liveavatar --preset quick` renders
both entries into a fresh library. Each MP4 must be H.264 at 25 fps and as
long as its speech to within one frame. About 50 s on an idle 2-core CPU.
Speed is a benchmark's business, not this test's: the time limit only stops a
hung render, and is far above what a busy machine needs.
"""

from __future__ import annotations

import json
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest

from avatar_batch.core.proc import run

REPO = Path(__file__).resolve().parents[2]
HANG_LIMIT_S = 1800
FRAME_S = 1 / 25
AAC_SLACK_S = 0.025  # an AAC stream ends on a 1024-sample packet (21 ms at 48 kHz)

pytestmark = pytest.mark.slow


def cli(*args: str | Path, timeout_s: float = HANG_LIMIT_S) -> None:
    run([sys.executable, "-m", "avatar_batch", *args], timeout_s=timeout_s, cwd=REPO, what="avatar-batch")


def probe(path: Path) -> dict[str, dict]:
    done = run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name,r_frame_rate,nb_frames,duration",
            "-of",
            "json",
            path,
        ],
        timeout_s=30,
    )
    return {s["codec_type"]: s for s in json.loads(done.stdout)["streams"]}


def test_liveavatar_smoke_render(tmp_path):
    started_s = time.perf_counter()
    weights, library = tmp_path / "weights", tmp_path / "library"
    cli("weights", "tiny", weights)
    cli(
        "render",
        REPO / "questions" / "smoke.yaml",
        "--renderer",
        "liveavatar",
        "--weights",
        weights,
        "--preset",
        "quick",
        "--library",
        library,
        "--plain",
    )
    elapsed_s = time.perf_counter() - started_s
    items = json.loads((library / "manifest.json").read_text(encoding="utf-8"))["items"]
    assert sorted(item["entry_id"] for item in items) == ["smoke-pharmacy", "smoke-register"]
    for item in items:
        assert item["status"] == "completed", item.get("failure")
        assert item["renderer"] == "liveavatar" and item["telemetry"]["device"] == "cpu"
        streams = probe(library / item["video"])
        video, audio = streams["video"], streams["audio"]
        assert video["codec_name"] == "h264"
        assert Fraction(video["r_frame_rate"]) == 25
        video_s = int(video["nb_frames"]) * FRAME_S
        assert abs(video_s - float(audio["duration"])) <= FRAME_S + AAC_SLACK_S, (video_s, audio["duration"])
        assert abs(video_s - item["duration_s"]) <= FRAME_S
    print(f"liveavatar smoke render: {elapsed_s:.1f} s")
