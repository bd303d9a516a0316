"""Loudness: golden argv, loudnorm JSON parsing, and one real normalisation."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from avatar_batch.core.errors import ToolError
from avatar_batch.speech import loudness
from avatar_batch.speech.loudness import (
    LoudnessTarget,
    Measurement,
    check_audible,
    check_master,
    limit_argv,
    linear_fits,
    measure_argv,
    next_gain_db,
    normalize,
    normalize_argv,
    parse_loudnorm_json,
)
from tests.speech.speech_fixtures import ebur128, ffprobe_audio, write_tone_wav

TARGET = LoudnessTarget(integrated_lufs=-16.0)

# What ffmpeg 5.1 prints after a measuring pass (trimmed).
LOUDNORM_STDERR = """Input #0, wav, from 'raw.wav':
  Duration: 00:00:02.95, bitrate: 352 kb/s
[Parsed_loudnorm_1 @ 0x55f1] 
{
	"input_i" : "-20.54",
	"input_tp" : "-0.04",
	"input_lra" : "0.00",
	"input_thresh" : "-30.87",
	"output_i" : "-16.76",
	"output_tp" : "-1.50",
	"output_lra" : "0.00",
	"output_thresh" : "-27.09",
	"normalization_type" : "dynamic",
	"target_offset" : "0.76"
}
"""


def test_measure_argv_golden():
    assert measure_argv(Path("/w/raw.wav"), TARGET) == [
        "ffmpeg", "-nostdin", "-hide_banner", "-nostats",
        "-i", "/w/raw.wav",
        "-af", "loudnorm=I=-16.00:TP=-1.70:LRA=11.0:print_format=json",
        "-f", "null", "-",
    ]  # fmt: skip


def test_normalize_argv_golden():
    measured = parse_loudnorm_json(LOUDNORM_STDERR)
    assert normalize_argv(Path("/w/raw.wav"), Path("/w/master.wav"), TARGET, measured) == [
        "ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-y",
        "-i", "/w/raw.wav",
        "-af",
        "loudnorm=I=-16.00:TP=-1.70:LRA=11.0"
        ":measured_I=-20.54:measured_TP=-0.04:measured_LRA=0.00:measured_thresh=-30.87:offset=0.76"
        ":linear=true",
        "-ar", "48000", "-ac", "1", "-c:a", "pcm_s16le",
        "-f", "wav", "/w/master.wav",
    ]  # fmt: skip


def test_limit_argv_golden():
    assert limit_argv(Path("/w/raw.wav"), Path("/w/lim.wav"), 6.25, -2.2) == [
        "ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-y",
        "-i", "/w/raw.wav",
        "-af",
        "aresample=192000,volume=6.250dB,"
        "alimiter=limit=0.77625:attack=1:release=20:level=false:latency=true",
        "-ar", "48000", "-ac", "1", "-c:a", "pcm_f32le",
        "-f", "wav", "/w/lim.wav",
    ]  # fmt: skip


def test_normalize_argv_clamps_values_loudnorm_would_reject():
    wild = Measurement(-120.0, 150.0, -3.0, -130.0, 200.0)
    graph = normalize_argv(Path("a.wav"), Path("b.wav"), TARGET, wild)[10]
    assert "measured_I=-99.00:measured_TP=99.00:measured_LRA=0.00:measured_thresh=-99.00:offset=99.00" in graph


def test_linear_fits_only_when_the_gain_keeps_the_peak_under_the_aim():
    # -20 LUFS needs +4 dB: a -6 dBTP peak ends at -2.0 (under -1.7), a -5 dBTP one at -1.0
    assert linear_fits(Measurement(-20.0, -6.0, 1.0, -30.0, 0.0), TARGET)
    assert not linear_fits(Measurement(-20.0, -5.0, 1.0, -30.0, 0.0), TARGET)


def test_next_gain_adds_the_miss_then_steps_along_the_secant():
    assert next_gain_db([(6.0, -18.0)], -16.0) == pytest.approx(8.0)
    # 2 dB more gain bought 1 LU: the remaining 1 LU needs 2 dB more
    assert next_gain_db([(6.0, -18.0), (8.0, -17.0)], -16.0) == pytest.approx(10.0)
    # a step that bought nothing must not divide by ~0
    assert next_gain_db([(6.0, -18.0), (8.0, -18.0)], -16.0) == pytest.approx(48.0)
    assert next_gain_db([(6.0, -18.0), (6.0, -18.0)], -16.0) == pytest.approx(8.0)


def test_parse_loudnorm_json():
    assert parse_loudnorm_json(LOUDNORM_STDERR) == Measurement(
        integrated_lufs=-20.54, true_peak_dbtp=-0.04, range_lu=0.0, threshold_lufs=-30.87, target_offset_lu=0.76
    )


def test_parse_loudnorm_json_reads_minus_infinity_of_silence():
    silent = LOUDNORM_STDERR.replace('"-20.54"', '"-inf"').replace('"0.76"', '"inf"')
    measured = parse_loudnorm_json(silent)
    assert measured.integrated_lufs == float("-inf")
    with pytest.raises(ToolError, match="silent"):
        check_audible(measured, Path("raw.wav"), what="job x")


@pytest.mark.parametrize("stderr", ["no json here", '{"input_i": "-20"}', '{"input_i": "loud", "input_tp": 1}'])
def test_parse_loudnorm_json_rejects_bad_output(stderr):
    with pytest.raises(ToolError, match="loudnorm"):
        parse_loudnorm_json(stderr)


def test_normalize_a_quiet_short_tone_to_target(tmp_path: Path):
    src = write_tone_wav(tmp_path / "quiet.wav", duration_s=1.5, amplitude=0.02)
    out = tmp_path / "master.wav"
    result = normalize(src, out, TARGET, what="test")
    integrated, peak = ebur128(out)
    assert integrated == pytest.approx(-16.0, abs=1.0)
    assert peak <= -1.5
    assert result.source.integrated_lufs < -30  # it really was quiet
    assert result.limiter_gain_db is None  # a tone's peaks leave room for one linear gain
    info = ffprobe_audio(out)
    assert (info["codec_name"], info["sample_rate"], info["channels"]) == ("pcm_s16le", "48000", 1)
    assert float(info["duration"]) == pytest.approx(1.5, abs=0.001)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []


def test_normalize_limits_peaky_audio_to_reach_the_target(tmp_path: Path):
    """Clicks every 100 ms over a quiet tone: a peak-to-loudness ratio no single
    gain can bring to -16 LUFS under -1.5 dBTP, as with synthetic speech."""
    rate_hz = 48_000
    src = write_tone_wav(tmp_path / "peaky.wav", duration_s=1.0, rate_hz=rate_hz, amplitude=0.02)
    with wave.open(str(src), "rb") as handle:
        samples = np.frombuffer(handle.readframes(handle.getnframes()), "<i2").copy()
    samples[:: rate_hz // 10] = 32000
    with wave.open(str(src), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate_hz)
        handle.writeframes(samples.tobytes())
    out = tmp_path / "master.wav"
    result = normalize(src, out, TARGET, what="test")
    assert result.limiter_gain_db is not None and result.limiter_passes >= 1
    integrated, peak = ebur128(out)
    assert integrated == pytest.approx(-16.0, abs=1.0)
    assert peak <= -1.5
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []


def test_limiter_search_keeps_the_closest_attempt(tmp_path: Path, monkeypatch):
    """If no step lands within tolerance, the closest attempt is the one kept."""
    src = write_tone_wav(tmp_path / "tone.wav", duration_s=1.0)
    outcomes = iter([-17.5, -16.6, -17.9, -18.0, -18.1])
    calls = []

    def fake_run(argv, **kwargs):
        calls.append(argv)
        Path(argv[-1]).write_bytes(f"attempt {len(calls)}".encode())

    def fake_measure(path, target, *, what):
        value = next(outcomes)
        return Measurement(value, -2.2, 1.0, -27.0, 0.0)

    monkeypatch.setattr(loudness.proc, "run", fake_run)
    monkeypatch.setattr(loudness, "measure", fake_measure)
    source = Measurement(-22.0, -4.0, 1.0, -32.0, 0.0)
    out = tmp_path / "limited.wav"
    measured, gain_db, passes = loudness._limit_to_target(src, out, source, TARGET, "test")
    assert passes == loudness.MAX_LIMITER_PASSES
    assert measured.integrated_lufs == -16.6
    assert out.read_bytes() == b"attempt 2"
    assert gain_db == pytest.approx(7.5)  # 6 dB first, then the 1.5 LU miss added


def test_normalize_refuses_silence(tmp_path: Path):
    src = write_tone_wav(tmp_path / "silent.wav", duration_s=1.0, amplitude=0.0)
    with pytest.raises(ToolError, match="silent"):
        normalize(src, tmp_path / "out.wav", TARGET, what="job silent")
    assert not (tmp_path / "out.wav").exists()


def test_check_master_refuses_a_miss_or_a_peak_over_the_ceiling():
    check_master(Measurement(-16.9, -1.6, 1, -27, 0), TARGET, Path("m.wav"), what="job")
    with pytest.raises(ToolError, match="-17.2 LUFS"):
        check_master(Measurement(-17.2, -1.6, 1, -27, 0), TARGET, Path("m.wav"), what="job")
    with pytest.raises(ToolError, match="-1.4 dBTP"):
        check_master(Measurement(-16.0, -1.4, 1, -27, 0), TARGET, Path("m.wav"), what="job")
