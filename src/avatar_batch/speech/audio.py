"""Audio file plumbing for the speech stage: decode a recording to WAV,
derive the 16 kHz model copy, and probe a file's duration with ffprobe.

argv builders are pure; `decode`, `to_model_rate` and `probe_audio` run
them through `core.proc`. Knows nothing about loudness, TTS or captions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from avatar_batch.core import proc
from avatar_batch.core.errors import ToolError
from avatar_batch.core.records import MODEL_SAMPLE_RATE_HZ

FFMPEG_TIMEOUT_S = 300.0
FFPROBE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class AudioInfo:
    duration_s: float
    sample_rate_hz: int
    channels: int
    codec: str


def _ffmpeg_head() -> list[str]:
    return ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-y"]


def decode_argv(src: Path, out: Path) -> list[str]:
    """Any recording ffmpeg reads (wav/mp3/m4a/flac/ogg) -> mono 16-bit PCM WAV
    at its own rate, first audio stream only (an m4a may carry cover art as a
    video stream). Mono here, because loudness is measured before the master
    is made and a stereo reading does not hold for the mono downmix."""
    return [
        *_ffmpeg_head(), "-i", str(src), "-map", "0:a:0", "-vn",
        "-ac", "1", "-c:a", "pcm_s16le", "-f", "wav", str(out),
    ]  # fmt: skip


def model_rate_argv(master: Path, out: Path) -> list[str]:
    """The master resampled to what the model's audio encoder expects: 16 kHz mono s16."""
    return [
        *_ffmpeg_head(), "-i", str(master),
        "-ar", str(MODEL_SAMPLE_RATE_HZ), "-ac", "1", "-c:a", "pcm_s16le",
        "-f", "wav", str(out),
    ]  # fmt: skip


def probe_argv(path: Path) -> list[str]:
    return [
        "ffprobe", "-v", "error", "-select_streams", "a:0",
        "-show_entries", "stream=codec_name,sample_rate,channels,duration:format=duration",
        "-of", "json", str(path),
    ]  # fmt: skip


def parse_probe(text: str, path: Path) -> AudioInfo:
    """AudioInfo from ffprobe JSON; ToolError when there is no audio or no duration."""
    try:
        data = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise ToolError(f"ffprobe gave unreadable output for {path}: {text[:300]!r}") from exc
    streams = data.get("streams") or []
    if not streams:
        raise ToolError(f"{path} has no audio stream ffmpeg can decode")
    stream = streams[0]
    duration = stream.get("duration") or (data.get("format") or {}).get("duration")
    try:
        duration_s = float(duration)  # type: ignore[arg-type]  # None lands in the except
    except (TypeError, ValueError):
        duration_s = 0.0
    if not duration_s > 0:
        raise ToolError(f"{path} holds no audio (duration {duration!r})")
    return AudioInfo(
        duration_s=duration_s,
        sample_rate_hz=int(stream.get("sample_rate") or 0),
        channels=int(stream.get("channels") or 0),
        codec=str(stream.get("codec_name") or ""),
    )


def probe_audio(path: Path) -> AudioInfo:
    if not path.is_file():
        raise ToolError(f"expected audio file {path} was not written")
    done = proc.run(probe_argv(path), timeout_s=FFPROBE_TIMEOUT_S, what=f"ffprobe {path.name}")
    return parse_probe(done.stdout.decode("utf-8", "replace"), path)


def decode(src: Path, out: Path, *, what: str) -> None:
    proc.run(decode_argv(src, out), timeout_s=FFMPEG_TIMEOUT_S, what=f"ffmpeg decode ({what})")


def to_model_rate(master: Path, out: Path, *, what: str) -> None:
    proc.run(model_rate_argv(master, out), timeout_s=FFMPEG_TIMEOUT_S, what=f"ffmpeg resample ({what})")
