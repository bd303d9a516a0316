"""Builders for library tests: items, staged job folders, a tiny real MP4."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

from avatar_batch.core.proc import run
from avatar_batch.core.records import LibraryItem
from avatar_batch.library import Library

FIXED_TIME = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
VTT_TEXT = "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nWe open at nine.\n"
SRT_TEXT = "1\n00:00:00,000 --> 00:00:01,000\nWe open at nine.\n"


def make_tiny_mp4(path: Path, duration_s: float = 1.0) -> Path:
    """64x64, 25 fps test pattern with a sine tone: a real H.264/AAC MP4 in ~0.2 s."""
    run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc=size=64x64:rate=25:duration={duration_s}",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:sample_rate=48000:duration={duration_s}",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
            "-movflags",
            "+faststart",
            str(path),
        ],
        timeout_s=60,
    )
    return path


def make_item(
    job_id: str, entry_id: str = "hours", language: str = "en", status: str = "completed", **changes
) -> LibraryItem:
    fields = dict(
        job_id=job_id,
        entry_id=entry_id,
        language=language,
        persona="ana",
        department="Front desk",
        question=f"When does {entry_id} open?",
        answer=f"The {entry_id} desk opens at nine.",
        status=status,
        duration_s=1.0,
        width=64,
        height=64,
        fps=25,
        render_s=0.5,
        renderer="still",
        settings={"seed": 420},
        loudness_lufs=-16.0,
        created_at="2025-01-02T03:04:05Z",
    )
    fields.update(changes)
    return LibraryItem(**fields)


def stage(library: Library, job_id: str, mp4: Path, with_extras: bool = True) -> tuple[Path, dict[str, str]]:
    """A staging folder holding a job's outputs under arbitrary working names."""
    staged = library.staging_dir(job_id)
    shutil.copyfile(mp4, staged / "muxed.mp4")
    files = {"video": "muxed.mp4"}
    if with_extras:
        (staged / "poster-frame.jpg").write_bytes(b"\xff\xd8\xff poster bytes")
        (staged / "speech.vtt").write_text(VTT_TEXT, encoding="utf-8")
        (staged / "speech.srt").write_text(SRT_TEXT, encoding="utf-8")
        (staged / "speech.wav").write_bytes(b"RIFF scratch that is not committed")
        files.update(poster="poster-frame.jpg", captions_vtt="speech.vtt", captions_srt="speech.srt")
    return staged, files


def commit_new(library: Library, mp4: Path, job_id: str, **item_changes) -> LibraryItem:
    staged, files = stage(library, job_id, mp4)
    return library.commit(make_item(job_id, **item_changes), staged, files)


def broken_rows(library: Library) -> list[str]:
    """Manifest rows naming a file that is not there: must always be empty."""
    bad = []
    for item in library.items().values():
        for key in ("video", "poster", "captions_vtt", "captions_srt"):
            rel = getattr(item, key)
            if rel is not None and not (library.root / rel).is_file():
                bad.append(f"{item.job_id} {key} {rel}")
        if item.status in ("completed", "fallback") and item.video is None:
            bad.append(f"{item.job_id} has no video")
    return bad
