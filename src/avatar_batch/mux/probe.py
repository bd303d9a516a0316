"""What an MP4 holds, read with ffprobe: codecs, size, rate, frames, durations.

`parse_probe_json` is pure (tested on canned JSON); `probe` runs ffprobe.
A file without a video stream is an error; audio is optional (`has_audio`).
Knows nothing about speech tracks or what a job expected; `encode` checks that.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from avatar_batch.core import proc
from avatar_batch.core.errors import ToolError
from avatar_batch.mux.argv import probe_argv

FFPROBE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ProbeResult:
    path: Path
    duration_s: float  # the container's: the longest stream
    video_codec: str
    pix_fmt: str
    width_px: int
    height_px: int
    fps: float
    num_frames: int
    video_duration_s: float
    has_audio: bool
    audio_codec: str | None
    audio_duration_s: float | None
    audio_sample_rate_hz: int | None
    size_bytes: int


def _float(value: Any, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _rate(stream: Mapping[str, Any]) -> float:
    """Frames per second from "25/1"; "0/0" (unknown) falls through to r_frame_rate."""
    for key in ("avg_frame_rate", "r_frame_rate"):
        text = str(stream.get(key) or "0/0")
        numerator, _, denominator = text.partition("/")
        if _float(denominator or "1") and _float(numerator):
            return float(Fraction(int(numerator), int(denominator or "1")))
    return 0.0


def _first(streams: list[Mapping[str, Any]], codec_type: str) -> Mapping[str, Any] | None:
    return next((s for s in streams if s.get("codec_type") == codec_type), None)


def parse_probe_json(text: str, path: Path, size_bytes: int = 0) -> ProbeResult:
    try:
        data = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise ToolError(f"ffprobe gave unreadable output for {path}: {text[:300]!r}") from exc
    streams = list(data.get("streams") or [])
    video = _first(streams, "video")
    if video is None:
        raise ToolError(f"{path} has no video stream (streams: {[s.get('codec_type') for s in streams]})")
    audio = _first(streams, "audio")
    fps = _rate(video)
    video_duration_s = _float(video.get("duration"))
    num_frames = int(_float(video.get("nb_frames"), default=round(video_duration_s * fps)))
    return ProbeResult(
        path=path,
        duration_s=_float((data.get("format") or {}).get("duration"), default=video_duration_s),
        video_codec=str(video.get("codec_name") or ""),
        pix_fmt=str(video.get("pix_fmt") or ""),
        width_px=int(video.get("width") or 0),
        height_px=int(video.get("height") or 0),
        fps=fps,
        num_frames=num_frames,
        video_duration_s=video_duration_s,
        has_audio=audio is not None,
        audio_codec=str(audio.get("codec_name")) if audio else None,
        audio_duration_s=_float(audio.get("duration")) if audio else None,
        audio_sample_rate_hz=int(_float(audio.get("sample_rate"))) if audio else None,
        size_bytes=size_bytes,
    )


def probe(path: Path) -> ProbeResult:
    """Probe `path`; ToolError if ffprobe fails or finds no video stream."""
    if not path.is_file():
        raise ToolError(f"cannot probe {path}: no such file")
    done = proc.run(probe_argv(path), timeout_s=FFPROBE_TIMEOUT_S, what=f"ffprobe {path.name}")
    return parse_probe_json(done.stdout.decode("utf-8", "replace"), path, path.stat().st_size)
