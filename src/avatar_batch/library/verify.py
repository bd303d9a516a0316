"""Check that the manifest's playable rows are backed by good files.

`item_files_ok` is the cheap check the planner runs for every job (stat calls
against the sizes recorded at commit). `verify_items` is the thorough one
behind `avatar-batch library verify`: it also asks ffprobe whether each MP4
parses, has its streams and lasts as long as its row says. The ffprobe argv
is built by a pure function so it can be checked against a golden list.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from avatar_batch.core.errors import Problem, ToolError
from avatar_batch.core.proc import require_program, run
from avatar_batch.core.records import LibraryItem
from avatar_batch.library.layout import FILE_NAMES, FILE_SIZES_KEY, PLAYABLE_STATUSES, under

DURATION_TOLERANCE_S = 0.1
PROBE_TIMEOUT_S = 60.0
REQUIRED_STREAMS = ("video", "audio")


@dataclass(frozen=True)
class Probe:
    duration_s: float | None
    stream_types: tuple[str, ...]


def ffprobe_argv(video: Path, ffprobe: str = "ffprobe") -> list[str]:
    return [
        ffprobe,
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_entries",
        "format=duration:stream=codec_type",
        str(video),
    ]


def parse_probe(stdout: bytes) -> Probe:
    data = json.loads(stdout.decode("utf-8", "replace") or "{}")
    raw_duration = (data.get("format") or {}).get("duration")
    duration_s = float(raw_duration) if raw_duration not in (None, "N/A") else None
    types = tuple(str(stream.get("codec_type")) for stream in data.get("streams") or [])
    return Probe(duration_s, types)


def probe_video(video: Path) -> Probe:
    ffprobe = require_program("ffprobe", "Install ffmpeg (it ships ffprobe), e.g. `apt-get install ffmpeg`.")
    return parse_probe(run(ffprobe_argv(video, ffprobe), timeout_s=PROBE_TIMEOUT_S, what="ffprobe").stdout)


def item_files_ok(root: Path, item: LibraryItem) -> bool:
    """Every file the row names exists with the size recorded at commit."""
    sizes = item.telemetry.get(FILE_SIZES_KEY) or {}
    for key in FILE_NAMES:
        rel = getattr(item, key)
        if rel is None:
            continue
        try:
            size = under(root, rel).stat().st_size
        except OSError:
            return False
        if size == 0 or (key in sizes and sizes[key] != size):
            return False
    return item.video is not None


def verify_items(
    root: Path,
    items: Iterable[LibraryItem],
    probe: Callable[[Path], Probe] = probe_video,
) -> list[Problem]:
    problems: list[Problem] = []
    for item in sorted(items, key=lambda i: (i.entry_id, i.language, i.job_id)):
        if item.status in PLAYABLE_STATUSES:
            problems += _file_problems(root, item, probe)
    return problems


def _problem(root: Path, item: LibraryItem, field: str, message: str, value: str | None = None) -> Problem:
    rel = getattr(item, field, None) or item.video or ""
    return Problem(
        file=str(under(root, rel)) if rel else str(root),
        message=f"{message} (job {item.job_id}, language '{item.language}')",
        entry=item.entry_id,
        field=field,
        value=value,
        fix=f"re-render it: run again with --force for entry '{item.entry_id}'",
    )


def _file_problems(root: Path, item: LibraryItem, probe: Callable[[Path], Probe]) -> list[Problem]:
    if item.video is None:
        return [_problem(root, item, "video", f"a {item.status} row names no video")]
    problems: list[Problem] = []
    sizes = item.telemetry.get(FILE_SIZES_KEY) or {}
    for key in FILE_NAMES:
        rel = getattr(item, key)
        if rel is None:
            continue
        path = under(root, rel)
        if not path.is_file():
            problems.append(_problem(root, item, key, "file is missing"))
            continue
        size = path.stat().st_size
        if size == 0:
            problems.append(_problem(root, item, key, "file is empty"))
        elif key in sizes and sizes[key] != size:
            problems.append(_problem(root, item, key, f"file is {size} bytes, {sizes[key]} were committed", str(size)))
    if not problems:
        problems += _video_problems(root, item, probe)
    return problems


def _video_problems(root: Path, item: LibraryItem, probe: Callable[[Path], Probe]) -> list[Problem]:
    assert item.video is not None  # rows without a video are reported before the probe
    try:
        result = probe(under(root, item.video))
    except (ToolError, ValueError) as exc:
        return [_problem(root, item, "video", f"ffprobe cannot read it: {exc}")]
    problems: list[Problem] = []
    missing = [kind for kind in REQUIRED_STREAMS if kind not in result.stream_types]
    if missing:
        problems.append(_problem(root, item, "video", f"no {' or '.join(missing)} stream"))
    if item.duration_s is not None and (
        result.duration_s is None or abs(result.duration_s - item.duration_s) > DURATION_TOLERANCE_S
    ):
        problems.append(
            _problem(
                root,
                item,
                "video",
                f"lasts {result.duration_s} s but its row says {item.duration_s} s",
                str(result.duration_s),
            )
        )
    return problems
