"""synthesize(): real TTS in English and Mandarin, and recordings used instead of TTS."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from avatar_batch.core.errors import InputFileError, ToolError
from avatar_batch.speech import SOURCE_RECORDING, SOURCE_TTS, synthesize, tts
from tests.speech.speech_fixtures import ebur128, ffprobe_audio, make_job, write_tone_wav

OUTPUTS = ("speech_raw.wav", "speech_master.wav", "speech_16k.wav", "captions.vtt", "captions.srt")


def assert_master_and_model_files(track, target_lufs: float = -16.0) -> None:
    master = ffprobe_audio(track.master_wav)
    assert (master["codec_name"], master["sample_rate"], master["channels"]) == ("pcm_s16le", "48000", 1)
    assert float(master["duration"]) == pytest.approx(track.duration_s, abs=1e-3)
    integrated, peak = ebur128(track.master_wav)
    assert integrated == pytest.approx(target_lufs, abs=1.0)
    assert peak <= -1.5
    assert track.loudness_lufs == pytest.approx(integrated, abs=0.5)
    model = ffprobe_audio(track.model_wav)
    assert (model["codec_name"], model["sample_rate"], model["channels"]) == ("pcm_s16le", "16000", 1)
    assert float(model["duration"]) == pytest.approx(track.duration_s, abs=0.01)


@pytest.mark.parametrize(
    "voice, answer, sentences",
    [
        ("en-us", "Returns are free for thirty days. Just print the label!", 2),
        ("cmn", "退货三十天内免费。请打印退货标签！", 2),
    ],
)
def test_tts_speech_track(tmp_path: Path, voice, answer, sentences):
    job = make_job(answer=answer, voice=voice)
    track = synthesize(job, tmp_path / "work")
    assert track.source == SOURCE_TTS
    assert all((tmp_path / "work" / name).is_file() for name in OUTPUTS)
    assert track.duration_s > 1.0
    assert_master_and_model_files(track)
    assert len(track.cues) == sentences and track.cues[-1].end_s == track.duration_s
    vtt = track.captions_vtt.read_text(encoding="utf-8")
    assert vtt.startswith("WEBVTT\n") and track.cues[0].text in vtt
    assert "-->" in track.captions_srt.read_text(encoding="utf-8")
    report = json.loads((tmp_path / "work" / "speech.json").read_text(encoding="utf-8"))
    assert report["source"] == "tts" and report["engine"] in ("pyttsx3", "espeak-ng")
    assert report["voice"] == voice


def test_loudness_target_comes_from_the_voice(tmp_path: Path):
    recording = write_tone_wav(tmp_path / "rec.wav", duration_s=1.0)
    job = make_job(answer="A quieter answer for a quieter library.", audio_path=recording)
    job = replace(job, voice=replace(job.voice, loudness_lufs=-23.0))
    track = synthesize(job, tmp_path / "work")
    assert_master_and_model_files(track, target_lufs=-23.0)


def _no_tts(*args, **kwargs):
    raise AssertionError("TTS must not run when the job has a recording")


def _make_m4a(wav: Path) -> Path:
    m4a = wav.with_suffix(".m4a")
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(wav), "-c:a", "aac", "-b:a", "96k", str(m4a)],
        check=True,
    )
    return m4a


def _make_stereo_flac(wav: Path) -> Path:
    """Left: the tone; right: a different tone. A stereo loudness reading would
    not hold for the mono master."""
    flac = wav.with_name("stereo.flac")
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(wav),
         "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=44100:duration=1",
         "-filter_complex", "[0:a][1:a]join=inputs=2:channel_layout=stereo", str(flac)],
        check=True,
    )  # fmt: skip
    return flac


@pytest.mark.parametrize("container", ["wav", "m4a", "stereo flac"])
def test_recording_is_used_instead_of_tts(tmp_path: Path, monkeypatch, container):
    monkeypatch.setattr(tts, "speak", _no_tts)
    recording = write_tone_wav(tmp_path / "rec" / "answer.wav", duration_s=1.0, rate_hz=44_100, amplitude=0.05)
    if container == "m4a":
        recording = _make_m4a(recording)
    if container == "stereo flac":
        recording = _make_stereo_flac(recording)
        assert ffprobe_audio(recording)["channels"] == 2
    job = make_job(answer="Recorded. Two sentences.", audio_path=recording)
    track = synthesize(job, tmp_path / "work")
    assert track.source == SOURCE_RECORDING
    # AAC adds up to one 1024-sample frame of padding at 44.1 kHz
    assert track.duration_s == pytest.approx(1.0, abs=0.03)
    assert_master_and_model_files(track)
    assert [c.text for c in track.cues] == ["Recorded.", "Two sentences."]
    report = json.loads((tmp_path / "work" / "speech.json").read_text(encoding="utf-8"))
    assert report["recording"] == str(recording)


def test_missing_recording_names_job_entry_and_field(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(tts, "speak", _no_tts)
    job = make_job(audio_path=tmp_path / "nope.mp3", language="de")
    with pytest.raises(InputFileError) as caught:
        synthesize(job, tmp_path / "work")
    message = str(caught.value)
    assert "job-test" in message and "'returns'" in message and "audio.de" in message and "nope.mp3" in message


def test_silent_recording_is_refused(tmp_path: Path):
    recording = write_tone_wav(tmp_path / "silence.wav", duration_s=1.0, amplitude=0.0)
    with pytest.raises(ToolError, match="silent"):
        synthesize(make_job(audio_path=recording), tmp_path / "work")
    assert not (tmp_path / "work" / "speech_master.wav").exists()


def test_file_that_is_not_audio_is_a_tool_error_with_ffmpegs_reason(tmp_path: Path):
    bogus = tmp_path / "answer.mp3"
    bogus.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(ToolError, match="ffmpeg decode") as caught:
        synthesize(make_job(audio_path=bogus), tmp_path / "work")
    assert "answer.mp3" in str(caught.value)
    assert not [p for p in (tmp_path / "work").iterdir() if p.name.startswith(".tmp-")]
