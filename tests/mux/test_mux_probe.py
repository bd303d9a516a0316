"""Parsing ffprobe's JSON into a ProbeResult."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avatar_batch.core.errors import ToolError
from avatar_batch.mux import parse_probe_json, probe

PROBE_JSON = {
    "streams": [
        {"index": 0, "codec_name": "h264", "codec_type": "video", "width": 704, "height": 384,
         "pix_fmt": "yuv420p", "r_frame_rate": "25/1", "avg_frame_rate": "25/1",
         "duration": "4.000000", "nb_frames": "100"},
        {"index": 1, "codec_name": "aac", "codec_type": "audio", "sample_rate": "48000",
         "channels": 1, "duration": "4.012000", "nb_frames": "189"},
    ],
    "format": {"duration": "4.012000", "format_name": "mov,mp4,m4a,3gp,3g2,mj2"},
}  # fmt: skip


def test_parse_probe_json():
    result = parse_probe_json(json.dumps(PROBE_JSON), Path("v.mp4"), 1234)
    assert (result.video_codec, result.pix_fmt, result.width_px, result.height_px) == ("h264", "yuv420p", 704, 384)
    assert (result.fps, result.num_frames, result.video_duration_s) == (25.0, 100, 4.0)
    assert (result.has_audio, result.audio_codec, result.audio_sample_rate_hz) == (True, "aac", 48000)
    assert result.duration_s == pytest.approx(4.012) and result.audio_duration_s == pytest.approx(4.012)
    assert result.size_bytes == 1234


def test_parse_without_audio_and_without_frame_count():
    data = {"streams": [dict(PROBE_JSON["streams"][0], avg_frame_rate="0/0")], "format": {}}
    del data["streams"][0]["nb_frames"]
    result = parse_probe_json(json.dumps(data), Path("v.mp4"))
    assert not result.has_audio and result.audio_codec is None
    assert result.fps == 25.0  # from r_frame_rate when the average is unknown
    assert result.num_frames == 100  # duration x fps
    assert result.duration_s == 4.0  # the video's, when the container has none


def test_no_video_stream_is_an_error():
    data = {"streams": [PROBE_JSON["streams"][1]], "format": PROBE_JSON["format"]}
    with pytest.raises(ToolError, match="no video stream"):
        parse_probe_json(json.dumps(data), Path("v.mp4"))


def test_garbage_is_an_error():
    with pytest.raises(ToolError, match="unreadable"):
        parse_probe_json("not json", Path("v.mp4"))


def test_probing_a_file_that_is_not_media_carries_ffprobes_reason(tmp_path: Path):
    bogus = tmp_path / "video.mp4"
    bogus.write_bytes(b"\x00" * 64)
    with pytest.raises(ToolError, match="ffprobe video.mp4 failed") as caught:
        probe(bogus)
    assert "Invalid data" in str(caught.value) or "invalid" in str(caught.value).lower()


def test_probing_a_missing_file(tmp_path: Path):
    with pytest.raises(ToolError, match="no such file"):
        probe(tmp_path / "absent.mp4")
