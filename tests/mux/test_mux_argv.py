"""Golden argv for every ffmpeg/ffprobe call of the mux stage."""

from __future__ import annotations

from pathlib import Path

import pytest

from avatar_batch.core.records import VideoGeometry
from avatar_batch.mux import encode_argv, poster_argv, poster_at_s, probe_argv

GEOMETRY = VideoGeometry(width_px=704, height_px=384, fps=25, num_frames=100)


def test_encode_argv_golden():
    # ffmpeg-python's order: inputs with their options, stream maps, output
    # options (sorted by name), the file, then the whole command's options.
    assert encode_argv(GEOMETRY, Path("/s/speech_master.wav"), Path("/o/video.mp4")) == [
        "ffmpeg",
        "-f", "rawvideo", "-video_size", "704x384", "-framerate", "25", "-pix_fmt", "rgb24", "-i", "pipe:0",
        "-i", "/s/speech_master.wav",
        "-map", "0:v:0", "-map", "1:a:0",
        "-f", "mp4", "-b:a", "128k", "-ar", "48000", "-c:a", "aac",
        "-c:v", "libx264", "-crf", "20", "-movflags", "+faststart", "-pix_fmt", "yuv420p",
        "-preset", "veryfast", "-r", "25",
        "/o/video.mp4",
        "-hide_banner", "-nostats", "-loglevel", "error", "-y",
    ]  # fmt: skip


def test_encode_argv_takes_crf_and_preset():
    argv = encode_argv(GEOMETRY, Path("a.wav"), Path("v.mp4"), crf=28, preset="slow")
    assert argv[argv.index("-crf") + 1] == "28"
    assert argv[argv.index("-preset") + 1] == "slow"


def test_poster_argv_golden():
    assert poster_argv(Path("/o/video.mp4"), Path("/o/poster.jpg"), 1.0) == [
        "ffmpeg",
        "-ss", "1.000", "-i", "/o/video.mp4",
        "-f", "image2", "-frames:v", "1", "-q:v", "2", "-update", "1", "/o/poster.jpg",
        "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-y",
    ]  # fmt: skip


def test_encode_options_sit_on_the_input_or_output_they_belong_to():
    argv = encode_argv(GEOMETRY, Path("/s/speech_master.wav"), Path("/o/video.mp4"))
    raw_input = argv[1 : argv.index("pipe:0") + 1]
    assert raw_input[-2:] == ["-i", "pipe:0"] and {"-f", "-video_size", "-framerate", "-pix_fmt"} <= set(raw_input)
    pairs = argv[argv.index("1:a:0") + 1 : argv.index("/o/video.mp4")]
    output = dict(zip(pairs[::2], pairs[1::2], strict=True))
    assert output["-c:v"] == "libx264" and output["-pix_fmt"] == "yuv420p" and output["-movflags"] == "+faststart"
    assert output["-r"] == "25" and output["-ar"] == "48000" and output["-f"] == "mp4"


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
    assert argv.count(str(odd)) == 1 and argv.count("/s/m.wav") == 1
