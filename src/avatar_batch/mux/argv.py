"""ffmpeg/ffprobe command lines for the mux stage, as pure functions.

Each returns an argv list (never a shell string); golden tests pin them.
No text from the catalogue ever reaches these: only paths, which ffmpeg takes
as separate arguments, and numbers.
"""

from __future__ import annotations

from pathlib import Path

from avatar_batch.core.records import MASTER_SAMPLE_RATE_HZ, VideoGeometry

DEFAULT_CRF = 20
DEFAULT_PRESET = "veryfast"
AUDIO_BITRATE = "128k"


def encode_argv(
    geometry: VideoGeometry,
    master_wav: Path,
    out_mp4: Path,
    *,
    crf: int = DEFAULT_CRF,
    preset: str = DEFAULT_PRESET,
) -> list[str]:
    """One ffmpeg reading raw rgb24 frames on stdin (input 0) and the master WAV
    (input 1), writing H.264 yuv420p at a constant `geometry.fps` with AAC audio.
    +faststart moves the index (moov) to the front so browsers start playback
    before the whole file arrives."""
    fps = str(geometry.fps)
    return [
        "ffmpeg", "-hide_banner", "-nostats", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24",
        "-video_size", f"{geometry.width_px}x{geometry.height_px}",
        "-framerate", fps, "-i", "pipe:0",
        "-i", str(master_wav),
        "-map", "0:v:0", "-map", "1:a:0",
        "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
        "-r", fps, "-fps_mode", "cfr",
        "-c:a", "aac", "-b:a", AUDIO_BITRATE, "-ar", str(MASTER_SAMPLE_RATE_HZ),
        "-movflags", "+faststart",
        "-f", "mp4", str(out_mp4),
    ]  # fmt: skip


def poster_at_s(video_duration_s: float) -> float:
    """1 s in (past a fade-in or the first, often stiff, frames), or the middle of a clip under 2 s."""
    return 1.0 if video_duration_s >= 2.0 else video_duration_s / 2


def poster_argv(video: Path, out_jpg: Path, at_s: float) -> list[str]:
    # -ss before -i seeks the input (fast, and exact since ffmpeg decodes from
    # the previous keyframe); -update 1 writes one image, not a numbered sequence.
    return [
        "ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-y",
        "-ss", f"{at_s:.3f}", "-i", str(video),
        "-frames:v", "1", "-q:v", "2", "-update", "1",
        "-f", "image2", str(out_jpg),
    ]  # fmt: skip


def probe_argv(path: Path) -> list[str]:
    return [
        "ffprobe", "-v", "error", "-print_format", "json",
        "-show_format", "-show_streams", str(path),
    ]  # fmt: skip
