"""Helpers for the multi-worker render tests: what makes two libraries "the
same", and a render command run as a child process whose lines we read."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from avatar_batch.core.proc import run
from tests.conftest import write_sine_wav


def use_recordings(project) -> None:
    """Give every entry a recorded answer. TTS under load may fall back from
    one engine to another (the job id stays, the waveform changes), which
    would make two renders differ for a reason that has nothing to do with
    the workers; a recording is decoded the same way every time."""
    data = project.data()
    for index, entry in enumerate(data["entries"]):
        wav = write_sine_wav(project.root / "audio" / f"{entry['id']}.wav", 1.5 + 0.5 * index, freq_hz=180 + 40 * index)
        entry["audio"] = {"en": f"../audio/{wav.name}"}
    project.write(data)


def frame_digest(video: Path) -> str:
    """sha256 of every decoded frame (RGB), independent of container metadata."""
    done = run(
        ["ffmpeg", "-v", "error", "-i", video, "-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        timeout_s=120,
        what="decode for frame hashes",
    )
    return hashlib.sha256(done.stdout).hexdigest()


def library_fingerprint(library: Path) -> list[tuple[str, str, str, str, str]]:
    """(entry, language, job id, status, frame hash) in manifest order; a failed job's hash is ""."""
    items = json.loads((library / "manifest.json").read_text(encoding="utf-8"))["items"]
    return [
        (
            item["entry_id"],
            item["language"],
            item["job_id"],
            item["status"],
            frame_digest(library / item["video"]) if item.get("video") else "",
        )
        for item in items
    ]


def latest_report(library: Path) -> dict:
    return json.loads(sorted((library / "runs").glob("*.json"))[-1].read_text(encoding="utf-8"))


def start_render(project, *flags: str) -> subprocess.Popen:
    """`render --plain` in its own session (so a test can signal the whole
    group as a terminal's Ctrl-C does), output as text lines."""
    return subprocess.Popen(
        [sys.executable, "-m", "avatar_batch", "render", str(project.catalogue), "--plain", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=project.root,
        start_new_session=True,
        env=dict(os.environ),
    )


def read_until(process: subprocess.Popen, needle: str, seen: list[str]) -> str:
    """Read output lines until one contains `needle`; every line goes to `seen`."""
    assert process.stdout is not None
    for line in process.stdout:
        seen.append(line)
        if needle in line:
            return line
    raise AssertionError(f"the run ended without printing {needle!r}:\n{''.join(seen)}")


def worker_pids(lines: list[str]) -> dict[str, int]:
    """From the plain lines `worker w0: ready (CPU, pid 123)`."""
    pids = {}
    for line in lines:
        if ": ready (" in line and "pid " in line:
            name = line.split("worker ", 1)[1].split(":", 1)[0]
            pids[name] = int(line.rsplit("pid ", 1)[1].rstrip(")\n"))
    return pids
