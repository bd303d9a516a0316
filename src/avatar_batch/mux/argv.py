"""ffmpeg/ffprobe command lines for the mux stage, as pure functions.

Each returns an argv list (never a shell string); golden tests pin them.
ffmpeg-python describes the ffmpeg graphs (inputs, stream maps, outputs) and
`ffmpeg.compile` turns them into argv; nothing here runs them: `core.proc`
is the one place that does (with timeouts and typed errors), so
ffmpeg-python's own `run`/`probe` helpers are never used. It has no builder
for ffprobe, so `probe_argv` is a plain list.
No text from the catalogue ever reaches these: only paths, which ffmpeg takes
as separate arguments, and numbers.
"""

from __future__ import annotations

from pathlib import Path

import ffmpeg

from avatar_batch.core.records import MASTER_SAMPLE_RATE_HZ, VideoGeometry

DEFAULT_CRF = 20
DEFAULT_PRESET = "veryfast"
AUDIO_BITRATE = "128k"
# Options for the whole command: quiet except for errors, which `core.proc` reports.
QUIET = ("-hide_banner", "-nostats", "-loglevel", "error")


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
    frames = ffmpeg.input(
        "pipe:0",
        format="rawvideo",
        pix_fmt="rgb24",
        video_size=(geometry.width_px, geometry.height_px),
        framerate=geometry.fps,
    )
    speech = ffmpeg.input(str(master_wav))
    video_options = {"c:v": "libx264", "preset": preset, "crf": crf, "pix_fmt": "yuv420p"}
    # -r as an output option alone makes the rate constant (frames duplicated or dropped
    # before encoding). ffmpeg 5.1's -fps_mode cfr gave byte-identical files with 5.1 and 7.0,
    # and is missing from the ffmpeg 4.x that Ubuntu 22.04 ships.
    rate_options = {"r": geometry.fps}
    audio_options = {"c:a": "aac", "audio_bitrate": AUDIO_BITRATE, "ar": MASTER_SAMPLE_RATE_HZ}
    graph = ffmpeg.output(
        frames["v:0"],
        speech["a:0"],
        str(out_mp4),
        format="mp4",
        movflags="+faststart",
        **video_options,
        **rate_options,
        **audio_options,
    )
    return ffmpeg.compile(graph.global_args(*QUIET), overwrite_output=True)


def poster_at_s(video_duration_s: float) -> float:
    """1 s in (past a fade-in or the first, often stiff, frames), or the middle of a clip under 2 s."""
    return 1.0 if video_duration_s >= 2.0 else video_duration_s / 2


def poster_argv(video: Path, out_jpg: Path, at_s: float) -> list[str]:
    # -ss on the input seeks it (fast, and exact since ffmpeg decodes from the
    # previous keyframe); -update 1 writes one image, not a numbered sequence.
    clip = ffmpeg.input(str(video), ss=f"{at_s:.3f}")
    graph = ffmpeg.output(clip, str(out_jpg), format="image2", update=1, **{"frames:v": 1, "q:v": 2})
    return ffmpeg.compile(graph.global_args("-nostdin", *QUIET), overwrite_output=True)


def probe_argv(path: Path) -> list[str]:
    return [
        "ffprobe", "-v", "error", "-print_format", "json",
        "-show_format", "-show_streams", str(path),
    ]  # fmt: skip
