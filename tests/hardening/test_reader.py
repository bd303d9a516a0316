"""The polling reader used by the crash and concurrency tests notices what it
is there to notice: half-written files and rows naming missing or cut files."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.hardening.reader import LibraryReader

TEMPLATE = '<html><script type="application/json" id="library-data">{"items": []}</script></html>\n'


def row(job_id: str, library: Path, sizes: dict[str, int]) -> dict:
    folder = f"videos/e/en/{job_id}"
    return {
        "job_id": job_id,
        "status": "completed",
        "video": f"{folder}/video.mp4",
        "poster": f"{folder}/poster.jpg",
        "captions_vtt": f"{folder}/captions.vtt",
        "captions_srt": f"{folder}/captions.srt",
        "telemetry": {"file_sizes_bytes": sizes},
    }


def write_library(library: Path, files: dict[str, bytes], manifest: str) -> None:
    for rel, data in files.items():
        (library / rel).parent.mkdir(parents=True, exist_ok=True)
        (library / rel).write_bytes(data)
    (library / "manifest.json").write_text(manifest)
    (library / "index.html").write_text(TEMPLATE)


def look(library: Path) -> LibraryReader:
    with LibraryReader(library, period_s=0.01) as reader:
        time.sleep(0.2)
    return reader


def whole_files(job_id: str) -> dict[str, bytes]:
    base = f"videos/e/en/{job_id}"
    return {f"{base}/{name}": b"1234" for name in ("video.mp4", "poster.jpg", "captions.vtt", "captions.srt")}


def test_a_whole_library_reads_clean(tmp_path: Path):
    sizes = {"video": 4, "poster": 4, "captions_vtt": 4, "captions_srt": 4}
    write_library(tmp_path, whole_files("a"), json.dumps({"items": [row("a", tmp_path, sizes)]}))
    reader = look(tmp_path)
    assert not reader.problems and reader.samples > 5


def test_missing_and_cut_files_and_half_json_are_noticed(tmp_path: Path):
    files = whole_files("a")
    del files["videos/e/en/a/poster.jpg"]
    sizes = {"video": 8, "poster": 4, "captions_vtt": 4, "captions_srt": 4}  # the video was cut to 4 bytes
    write_library(tmp_path, files, json.dumps({"items": [row("a", tmp_path, sizes)]}))
    problems = look(tmp_path).problems
    assert any("missing" in p and "poster.jpg" in p for p in problems), problems
    assert any("video.mp4 of 4 bytes, not 8" in p for p in problems), problems

    (tmp_path / "manifest.json").write_text('{"items": [')
    (tmp_path / "index.html").write_text(TEMPLATE[:40])
    problems = look(tmp_path).problems
    assert any("manifest.json is not whole JSON" in p for p in problems), problems
    assert any("index.html is not whole" in p for p in problems), problems
