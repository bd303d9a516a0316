"""encode(): real ffmpeg runs on synthetic frames and a generated speech master."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avatar_batch.core.errors import JobError, ToolError
from avatar_batch.core.records import VideoGeometry
from avatar_batch.mux import check_muxed, encode, encoder, frames_needed, probe
from tests.mux.mux_fixtures import (
    FPS,
    GEOMETRY,
    HEIGHT_PX,
    WIDTH_PX,
    CountingFrames,
    frame,
    make_speech,
    top_level_boxes,
)


def decoded_frame(video: Path, index: int) -> np.ndarray:
    """Frame `index` of `video`, decoded to (H, W, 3) uint8 by ffmpeg."""
    raw = subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(video), "-vf", f"select=eq(n\\,{index})",
         "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(HEIGHT_PX, WIDTH_PX, 3)


def green_of(image: np.ndarray) -> float:
    """The index-coded green level, read away from the red corner."""
    return float(image[HEIGHT_PX // 2 :, WIDTH_PX // 2 :, 1].mean())


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".tmp-")] if folder.exists() else []


def test_encode_two_seconds(tmp_path: Path):
    speech = make_speech(tmp_path / "speech", duration_s=2.0)
    out = tmp_path / "out"
    muxed = encode((frame(i) for i in range(50)), GEOMETRY, speech, out)
    assert muxed.video_path == out / "video.mp4" and muxed.poster_path == out / "poster.jpg"
    assert (muxed.width_px, muxed.height_px, muxed.fps, muxed.num_frames) == (WIDTH_PX, HEIGHT_PX, FPS, 50)
    assert muxed.size_bytes == muxed.video_path.stat().st_size > 0
    result = probe(muxed.video_path)
    assert (result.video_codec, result.pix_fmt, result.audio_codec) == ("h264", "yuv420p", "aac")
    assert result.audio_sample_rate_hz == 48_000 and result.fps == FPS
    assert abs(result.video_duration_s - speech.duration_s) <= 1 / FPS
    assert abs(muxed.duration_s - speech.duration_s) <= 1 / FPS
    boxes = top_level_boxes(muxed.video_path)
    assert boxes.index("moov") < boxes.index("mdat"), boxes  # +faststart
    with Image.open(muxed.poster_path) as poster:
        assert poster.format == "JPEG" and poster.size == (WIDTH_PX, HEIGHT_PX)
        # poster at 1.0 s is frame 25, whose green level is 25 * 4
        assert green_of(np.asarray(poster.convert("RGB"))) == pytest.approx(100, abs=8)
    assert leftovers(out) == []


@pytest.mark.parametrize("duration_s", [1.37, 0.3])
def test_video_ends_within_a_frame_of_odd_speech_lengths(tmp_path: Path, duration_s):
    speech = make_speech(tmp_path / "speech", duration_s=duration_s)
    muxed = encode(CountingFrames(200), GEOMETRY, speech, tmp_path / "out")
    assert muxed.num_frames == frames_needed(duration_s, FPS) == round(duration_s * FPS)
    result = probe(muxed.video_path)
    assert abs(result.video_duration_s - duration_s) <= 1 / FPS
    assert muxed.poster_path.is_file()


def test_short_stream_is_padded_with_its_last_frame(tmp_path: Path):
    speech = make_speech(tmp_path / "speech", duration_s=2.0)
    muxed = encode((frame(i) for i in range(10)), GEOMETRY, speech, tmp_path / "out")
    assert muxed.num_frames == 50
    assert green_of(decoded_frame(muxed.video_path, 5)) == pytest.approx(20, abs=6)
    assert green_of(decoded_frame(muxed.video_path, 49)) == pytest.approx(36, abs=6)  # frame 9 repeated


def test_long_stream_is_cut_and_closed(tmp_path: Path):
    speech = make_speech(tmp_path / "speech", duration_s=1.0)
    stream = CountingFrames(1000)
    muxed = encode(stream, GEOMETRY, speech, tmp_path / "out")
    assert muxed.num_frames == 25
    assert stream.taken == 25 and stream.closed


def test_a_generator_is_closed_when_encoding_stops_early(tmp_path: Path):
    state = {"closed": False}

    def frames():
        try:
            index = 0
            while True:
                yield frame(index)
                index += 1
        finally:
            state["closed"] = True

    encode(frames(), GEOMETRY, make_speech(tmp_path / "speech", duration_s=0.5), tmp_path / "out")
    assert state["closed"]


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((HEIGHT_PX, WIDTH_PX + 2, 3), np.uint8), r"shape \(64, 130, 3\)"),
        (np.zeros((HEIGHT_PX, WIDTH_PX, 4), np.uint8), r"shape \(64, 128, 4\)"),
        (np.zeros((HEIGHT_PX, WIDTH_PX, 3), np.float32), "dtype float32"),
        ([[0, 0, 0]], "is a list"),
    ],
)
def test_bad_frame_is_a_job_error_and_leaves_nothing(tmp_path: Path, bad, message):
    stream = CountingFrames(3)
    frames = [*stream, bad, frame(4)]
    out = tmp_path / "out"
    with pytest.raises(JobError, match=message) as caught:
        encode(iter(frames), GEOMETRY, make_speech(tmp_path / "speech", duration_s=1.0), out)
    assert "frame 3" in str(caught.value)
    assert not (out / "video.mp4").exists() and leftovers(out) == []


def test_empty_stream_is_a_job_error(tmp_path: Path):
    with pytest.raises(JobError, match="no frames"):
        encode(iter([]), GEOMETRY, make_speech(tmp_path / "speech", duration_s=1.0), tmp_path / "out")
    assert leftovers(tmp_path / "out") == []


def test_odd_size_is_refused_before_ffmpeg_starts(tmp_path: Path):
    odd = replace(GEOMETRY, width_px=127)
    stream = CountingFrames(50)
    with pytest.raises(JobError, match="odd side"):
        encode(stream, odd, make_speech(tmp_path / "speech", duration_s=1.0), tmp_path / "out")
    assert stream.taken == 0


def test_missing_master_is_a_tool_error_with_ffmpegs_stderr(tmp_path: Path):
    speech = replace(make_speech(tmp_path / "speech", duration_s=2.0), master_wav=tmp_path / "gone.wav")
    with pytest.raises(ToolError) as caught:
        encode(CountingFrames(50), GEOMETRY, speech, tmp_path / "out")
    assert "gone.wav" in str(caught.value) and "No such file" in str(caught.value)
    assert leftovers(tmp_path / "out") == []


def test_garbage_master_is_a_tool_error_with_ffmpegs_stderr(tmp_path: Path):
    speech = make_speech(tmp_path / "speech", duration_s=2.0)
    speech.master_wav.write_bytes(b"RIFF" + b"\x13" * 500)
    with pytest.raises(ToolError, match="ffmpeg") as caught:
        encode(CountingFrames(50), GEOMETRY, speech, tmp_path / "out")
    assert "speech_master.wav" in str(caught.value)


def test_check_muxed_refuses_what_was_not_asked(tmp_path: Path):
    speech = make_speech(tmp_path / "speech", duration_s=2.0)
    muxed = encode(CountingFrames(50), GEOMETRY, speech, tmp_path / "out")
    good = probe(muxed.video_path)
    check_muxed(good, GEOMETRY, speech, 50)
    cases = {
        "expected h264 yuv420p": replace(good, pix_fmt="yuv444p"),
        "expected 128x64": replace(good, width_px=130),
        "expected 50": replace(good, num_frames=48),
        "> 1 frame": replace(good, video_duration_s=2.05),
        "expected aac": replace(good, has_audio=False, audio_codec=None),
        "file lasts 2.100": replace(good, duration_s=2.1),
    }
    for message, bad in cases.items():
        with pytest.raises(ToolError, match=message):
            check_muxed(bad, GEOMETRY, speech, 50)


def test_frames_needed():
    assert frames_needed(2.0, 25) == 50
    assert frames_needed(1.37, 25) == 34
    assert frames_needed(0.001, 25) == 1
    assert frames_needed(10.339812, 25) == 258


def test_a_frame_rate_other_than_25_is_followed(tmp_path: Path):
    geometry = VideoGeometry(width_px=64, height_px=64, fps=10, num_frames=10)
    frames = (np.full((64, 64, 3), 100, np.uint8) for _ in range(100))
    muxed = encode(frames, geometry, make_speech(tmp_path / "speech", duration_s=1.0), tmp_path / "out")
    assert muxed.num_frames == 10 and probe(muxed.video_path).fps == 10


def test_encoder_refusing_its_options_is_a_tool_error_with_the_reason(tmp_path: Path):
    speech = make_speech(tmp_path / "speech", duration_s=1.0)
    with pytest.raises(ToolError, match="ffmpeg") as caught:
        encode(CountingFrames(25), GEOMETRY, speech, tmp_path / "out", preset="warp-speed")
    assert "warp-speed" in str(caught.value)  # x264's own complaint, from the stderr tail
    assert leftovers(tmp_path / "out") == []


def _fake_encoder(script: str):
    """An 'ffmpeg' that runs `script` in Python instead: the edge, faked."""
    return lambda geometry, master_wav, out_mp4, **kwargs: [sys.executable, "-c", script]


def test_encoder_failing_after_reading_everything_is_a_tool_error(tmp_path: Path, monkeypatch):
    script = "import sys; sys.stdin.buffer.read(); sys.stderr.write('No space left on device'); sys.exit(1)"
    monkeypatch.setattr(encoder, "encode_argv", _fake_encoder(script))
    with pytest.raises(ToolError, match="exit code 1: No space left on device"):
        encode(CountingFrames(25), GEOMETRY, make_speech(tmp_path / "speech", duration_s=1.0), tmp_path / "out")


def test_a_chatty_encoder_cannot_deadlock_the_pipe(tmp_path: Path, monkeypatch):
    """1 MiB on stderr before reading stdin: without draining stderr both sides would block."""
    script = "import sys; sys.stderr.write('x' * (1 << 20)); sys.stderr.flush(); sys.stdin.buffer.read()"
    monkeypatch.setattr(encoder, "encode_argv", _fake_encoder(script))
    with pytest.raises(ToolError, match="no such file"):  # it wrote no MP4, so the probe finds none
        encode(CountingFrames(25), GEOMETRY, make_speech(tmp_path / "speech", duration_s=1.0), tmp_path / "out")
