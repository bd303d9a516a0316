"""Golden argv for every ffmpeg/ffprobe call of the mux stage."""

from __future__ import annotations

from pathlib import Path

import pytest

from avatar_batch.core.records import VideoGeometry
from avatar_batch.mux import encode_argv, poster_argv, poster_at_s, probe_argv

GEOMETRY = VideoGeometry(width_px=704, height_px=384, fps=25, num_frames=100)


def test_encode_argv_golden():
    assert encode_argv(GEOMETRY, Path("/s/speech_master.wav"), Path("/o/video.mp4")) == [
        "ffmpeg", "-hide_banner", "-nostats", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-video_size", "704x384", "-framerate", "25", "-i", "pipe:0",
        "-i", "/s/speech_master.wav",
        "-map", "0:v:0", "-map", "1:a:0",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
        "-r", "25", "-fps_mode", "cfr",
        "-c:a", "aac", "-b:a", "128k", "-ar", "48000",
        "-movflags", "+faststart",
        "-f", "mp4", "/o/video.mp4",
    ]  # fmt: skip


def test_encode_argv_takes_crf_and_preset():
    argv = encode_argv(GEOMETRY, Path("a.wav"), Path("v.mp4"), crf=28, preset="slow")
    assert argv[argv.index("-crf") + 1] == "28"
    assert argv[argv.index("-preset") + 1] == "slow"


def test_poster_argv_golden():
    assert poster_argv(Path("/o/video.mp4"), Path("/o/poster.jpg"), 1.0) == [
        "ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-y",
        "-ss", "1.000", "-i", "/o/video.mp4",
        "-frames:v", "1", "-q:v", "2", "-update", "1",
        "-f", "image2", "/o/poster.jpg",
    ]  # fmt: skip


@pytest.mark.parametrize("duration_s, at_s", [(10.0, 1.0), (2.0, 1.0), (1.6, 0.8), (0.04, 0.02)])
def test_poster_time(duration_s, at_s):
    assert poster_at_s(duration_s) == pytest.approx(at_s)


def test_probe_argv_golden():
    assert probe_argv(Path("/o/video.mp4")) == [
        "ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", "/o/video.mp4",
    ]  # fmt: skip


def test_paths_stay_single_arguments():
    odd = Path("/o/a b; rm -rf ~ $(x)/video.mp4")
    argv = encode_argv(GEOMETRY, Path("/s/m.wav"), odd)
    assert argv[-1] == str(odd) and argv.count(str(odd)) == 1
