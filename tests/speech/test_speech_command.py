"""The `command` TTS engine: argv template, a real run of a small script, its
failures (exit code, no output, timeout), loudness, and the version string."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from avatar_batch import speech
from avatar_batch.core.errors import JobError, ToolError
from avatar_batch.core.fsio import file_sha256
from avatar_batch.core.records import CommandVoice, VoiceSettings
from avatar_batch.speech import command, tts
from avatar_batch.speech.audio import probe_audio
from tests.speech.speech_fixtures import ebur128, make_job

FAKE_TTS = Path(__file__).with_name("fake_tts.py")


def command_voice(mode: str = "ok", cwd: Path = FAKE_TTS.parent) -> VoiceSettings:
    argv = (sys.executable, FAKE_TTS.name, "--text-file", "{text_file}", "--out", "{out_wav}", "--mode", mode)
    voice = CommandVoice(argv=argv, executable=Path(sys.executable), cwd=cwd)
    return VoiceSettings(engine="command", voice="fake_tts", command=voice)


def test_argv_fills_only_the_two_placeholders(tmp_path: Path):
    voice = CommandVoice(
        argv=("piper", "--model", "voices/zh.onnx", "--input_file", "{text_file}", "--output={out_wav}", "{speaker}"),
        executable=Path("/opt/piper/piper"),
        cwd=tmp_path,
    )
    assert command.command_argv(voice, Path("/w/t.txt"), Path("/w/o.wav")) == [
        "/opt/piper/piper", "--model", "voices/zh.onnx", "--input_file", "/w/t.txt", "--output=/w/o.wav", "{speaker}",
    ]  # fmt: skip


def test_relative_work_paths_become_absolute(tmp_path: Path, monkeypatch):
    """The program runs in the catalogue's folder, not ours."""
    monkeypatch.chdir(tmp_path)
    voice = command_voice().command
    assert voice is not None
    argv = command.command_argv(voice, Path("t.txt"), Path("o.wav"))
    assert argv[3] == str(tmp_path / "t.txt") and argv[5] == str(tmp_path / "o.wav")


def test_the_script_speaks_into_a_wav(tmp_path: Path):
    result = tts.speak("Please register in the hall.", command_voice(), tmp_path / "raw.wav", job_id="job-1")
    assert result.engine == "command" and result.failures == ()
    assert probe_audio(result.wav_path).duration_s == pytest.approx(0.06 * 28, abs=0.01)


def test_synthesize_normalises_the_command_output(tmp_path: Path):
    job = make_job(answer="Your results are ready at the second counter.", voice="fake_tts")
    job = replace(job, voice=replace(command_voice(), loudness_lufs=-16.0))
    track = speech.synthesize(job, tmp_path)
    integrated, _ = ebur128(track.master_wav)
    assert integrated == pytest.approx(-16.0, abs=1.0)
    report = json.loads((tmp_path / "speech.json").read_text(encoding="utf-8"))
    assert report["engine"] == "command" and report["argv"][1] == "fake_tts.py"
    assert report["executable"] == sys.executable


def test_a_failing_command_is_a_clear_job_failure(tmp_path: Path):
    with pytest.raises(ToolError) as caught:
        tts.speak("Hello.", command_voice("fail"), tmp_path / "raw.wav", job_id="job-3")
    message = str(caught.value)
    assert "job-3" in message and "exit code 3" in message and "could not be loaded" in message
    assert not (tmp_path / "raw.wav").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_a_command_that_writes_nothing_is_a_clear_job_failure(tmp_path: Path):
    with pytest.raises(ToolError) as caught:
        tts.speak("Hello.", command_voice("nothing"), tmp_path / "raw.wav", job_id="job-4")
    message = str(caught.value)
    assert "job-4" in message and "wrote nothing" in message and "{out_wav}" in message


def test_a_hung_command_is_killed_at_the_timeout(tmp_path: Path):
    started = time.monotonic()
    with pytest.raises(ToolError) as caught:
        tts.speak("Hello.", command_voice("hang"), tmp_path / "raw.wav", job_id="job-5", timeout_s=1)
    assert time.monotonic() - started < 30
    assert "job-5" in str(caught.value) and "did not finish within 1 s" in str(caught.value)


def test_hostile_text_reaches_the_program_only_as_a_file(tmp_path: Path):
    marker = tmp_path / "pwned"
    text = f"$(touch {marker}) `touch {marker}`; touch {marker} {{out_wav}} & done"
    result = tts.speak(text, command_voice(), tmp_path / "raw.wav", job_id="job-6")
    assert not marker.exists() and probe_audio(result.wav_path).duration_s > 1.0


def test_version_is_the_first_line_the_program_answers():
    assert command.command_version(Path(sys.executable)) == f"Python {sys.version.split()[0]}"


def test_version_falls_back_to_the_programs_sha256(tmp_path: Path):
    program = tmp_path / "say"
    program.write_text("#!/bin/sh\necho 'no such option' >&2\nexit 1\n")
    program.chmod(0o755)
    assert command.command_version(program) == "sha256:" + file_sha256(program)


def test_engine_and_command_must_agree(tmp_path: Path):
    with pytest.raises(JobError, match="disagree"):
        tts.speak("Hello.", VoiceSettings(engine="command"), tmp_path / "raw.wav", job_id="job-8")
    with pytest.raises(JobError, match="disagree"):
        tts.speak("Hello.", replace(command_voice(), engine="espeak-ng"), tmp_path / "raw.wav", job_id="job-8")
