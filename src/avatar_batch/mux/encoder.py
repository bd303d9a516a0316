"""Frames + speech -> a checked MP4 and its poster.

1. One ffmpeg process reads raw frames on stdin and the master WAV, and
   writes `video.mp4` (H.264 yuv420p, AAC, +faststart) under a temporary name.
2. Exactly round(speech duration x fps) frames are fed, so the video ends
   within half a frame of the speech.
3. The MP4 is probed and checked against what was asked, then renamed into place.
4. `poster.jpg` is cut from it.
Odd frame sizes are refused rather than padded: yuv420p needs even sides,
renderers produce multiples of 64, and padding would make the MP4's size
differ from the geometry every other stage reports.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from avatar_batch.core import proc
from avatar_batch.core.errors import JobError, ToolError
from avatar_batch.core.fsio import atomic_path
from avatar_batch.core.records import MuxedVideo, SpeechTrack, VideoGeometry
from avatar_batch.mux.argv import DEFAULT_CRF, DEFAULT_PRESET, encode_argv, poster_argv, poster_at_s
from avatar_batch.mux.feed import StderrTail, feed_frames
from avatar_batch.mux.probe import ProbeResult, probe

VIDEO_NAME = "video.mp4"
POSTER_NAME = "poster.jpg"
ENCODER_FINISH_TIMEOUT_S = 600.0
POSTER_TIMEOUT_S = 60.0

# AAC codes 1024-sample frames and the encoder primes with one more. ffmpeg's
# mp4 muxer writes an edit list that hides both, so the audio stream probes at
# the speech duration (measured with ffmpeg 5.1: within 1 ms for 0.77-10.3 s
# masters, container duration likewise). The check still allows one AAC frame
# (21 ms at 48 kHz) on top of one video frame, for a build or player that
# counts the padded last frame; more than that means the mux went wrong.
AAC_FRAME_SAMPLES = 1024


def frames_needed(duration_s: float, fps: int) -> int:
    """Frames that make the video as long as the speech, to the nearest frame (at least 1)."""
    return max(1, round(duration_s * fps))


def check_geometry(geometry: VideoGeometry) -> None:
    if geometry.width_px <= 0 or geometry.height_px <= 0 or geometry.fps <= 0:
        raise JobError(f"invalid video geometry {geometry}: sizes and fps must be positive")
    if geometry.width_px % 2 or geometry.height_px % 2:
        raise JobError(
            f"video size {geometry.width_px}x{geometry.height_px} has an odd side; H.264 yuv420p needs "
            "even sides. Fix: the renderer must produce even sizes (multiples of 64 are expected)"
        )


def _stop(encoder: subprocess.Popen) -> None:
    """Kill an encoder we are abandoning and reap it. Its stdin may already be a
    broken pipe; closing that can only fail in the way we already know about."""
    encoder.kill()
    encoder.wait()
    with contextlib.suppress(BrokenPipeError):
        if encoder.stdin is not None:
            encoder.stdin.close()


def _run_encoder(argv: list[str], frames: Iterable[np.ndarray], geometry: VideoGeometry, num_frames: int) -> None:
    """Steps 1-2: start ffmpeg, feed it, wait for it; ToolError with its stderr tail on failure."""
    encoder = proc.popen_writer(argv)
    assert encoder.stdin is not None  # popen_writer always opens a pipe
    stderr = StderrTail(encoder.stderr)
    try:
        feed_frames(encoder.stdin, frames, geometry, num_frames)
        encoder.stdin.close()  # EOF: ffmpeg flushes and writes the index
        returncode = encoder.wait(timeout=ENCODER_FINISH_TIMEOUT_S)
    except BrokenPipeError as exc:
        _stop(encoder)
        raise ToolError(
            f"ffmpeg stopped before taking all {num_frames} frames: {proc.stderr_tail(stderr.text())}"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        _stop(encoder)
        raise ToolError(
            f"ffmpeg took all {num_frames} frames but did not finish within "
            f"{ENCODER_FINISH_TIMEOUT_S:.0f} s: {proc.stderr_tail(stderr.text())}"
        ) from exc
    except BaseException:
        _stop(encoder)  # our side failed (a bad frame, Ctrl-C): don't leave ffmpeg behind
        raise
    if returncode != 0:
        raise ToolError(f"ffmpeg encode failed with exit code {returncode}: {proc.stderr_tail(stderr.text())}")


def check_muxed(result: ProbeResult, geometry: VideoGeometry, speech: SpeechTrack, num_frames: int) -> None:
    """Step 3: the MP4 must hold what was asked, or the job fails here, not in a browser."""
    frame_s = 1.0 / geometry.fps
    audio_slack_s = AAC_FRAME_SAMPLES / (result.audio_sample_rate_hz or 48_000)
    problems = []
    if (result.video_codec, result.pix_fmt) != ("h264", "yuv420p"):
        problems.append(f"video is {result.video_codec} {result.pix_fmt}, expected h264 yuv420p")
    if (result.width_px, result.height_px) != (geometry.width_px, geometry.height_px):
        problems.append(
            f"video is {result.width_px}x{result.height_px}, expected {geometry.width_px}x{geometry.height_px}"
        )
    if result.num_frames != num_frames:
        problems.append(f"video has {result.num_frames} frames, expected {num_frames}")
    if abs(result.video_duration_s - speech.duration_s) > frame_s:
        problems.append(f"video lasts {result.video_duration_s:.3f} s, speech {speech.duration_s:.3f} s (> 1 frame)")
    if not result.has_audio or result.audio_codec != "aac":
        problems.append(f"audio stream is {result.audio_codec}, expected aac")
    if abs(result.duration_s - speech.duration_s) > frame_s + audio_slack_s:
        problems.append(f"file lasts {result.duration_s:.3f} s, speech {speech.duration_s:.3f} s")
    if problems:
        raise ToolError(f"{result.path} failed its checks: " + "; ".join(problems))


def encode(
    frames: Iterable[np.ndarray],
    geometry: VideoGeometry,
    speech: SpeechTrack,
    out_dir: Path,
    *,
    crf: int = DEFAULT_CRF,
    preset: str = DEFAULT_PRESET,
) -> MuxedVideo:
    """Encode `frames` with `speech.master_wav` into `out_dir/video.mp4` + `poster.jpg`."""
    check_geometry(geometry)
    num_frames = frames_needed(speech.duration_s, geometry.fps)
    video = out_dir / VIDEO_NAME
    with atomic_path(video) as tmp:
        argv = encode_argv(geometry, speech.master_wav, tmp, crf=crf, preset=preset)
        _run_encoder(argv, frames, geometry, num_frames)
        result = probe(tmp)
        check_muxed(result, geometry, speech, num_frames)
    poster = out_dir / POSTER_NAME
    with atomic_path(poster) as tmp:
        at_s = poster_at_s(result.video_duration_s)
        proc.run(poster_argv(video, tmp, at_s), timeout_s=POSTER_TIMEOUT_S, what="ffmpeg poster")
    return MuxedVideo(
        video_path=video,
        poster_path=poster,
        duration_s=result.duration_s,
        width_px=result.width_px,
        height_px=result.height_px,
        fps=geometry.fps,
        num_frames=result.num_frames,
        size_bytes=video.stat().st_size,
    )
