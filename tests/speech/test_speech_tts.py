"""TTS engines: argv, the isolated pyttsx3 worker, fallback, timeouts, hostile text."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from avatar_batch.core import proc
from avatar_batch.core.errors import JobError, ToolError, UnavailableError
from avatar_batch.core.records import VoiceSettings
from avatar_batch.speech import tts, tts_worker
from avatar_batch.speech.audio import probe_audio

EN = VoiceSettings(voice="en-us", rate_wpm=170)


def test_worker_argv_golden():
    assert tts.worker_argv("cmn", 150, Path("/w/t.txt"), Path("/w/o.wav")) == [
        sys.executable, "-m", "avatar_batch.speech.tts_worker",
        "--voice", "cmn", "--rate", "150", "--text-file", "/w/t.txt", "--out", "/w/o.wav",
    ]  # fmt: skip


def test_espeak_argv_golden():
    assert tts.espeak_argv("en-us", 160, Path("/w/t.txt"), Path("/w/o.wav")) == [
        "espeak-ng", "-v", "en-us", "-s", "160", "-f", "/w/t.txt", "-w", "/w/o.wav",
    ]  # fmt: skip


def test_real_worker_speaks_english(tmp_path: Path):
    text_file = tmp_path / "t.txt"
    text_file.write_text("Hello from the worker.", encoding="utf-8")
    out = tmp_path / "o.wav"
    proc.run(tts.worker_argv("en-us", 160, text_file, out), timeout_s=60)
    assert probe_audio(out).duration_s > 0.5


def test_worker_refuses_empty_text_without_starting_the_engine(tmp_path: Path, capsys):
    text_file = tmp_path / "t.txt"
    text_file.write_text("  \n", encoding="utf-8")
    args = ["--voice", "en-us", "--rate", "160", "--text-file", str(text_file), "--out", str(tmp_path / "o.wav")]
    assert tts_worker.main(args) == tts_worker.EXIT_NOTHING_WRITTEN
    assert "nothing to speak" in capsys.readouterr().err


def test_speak_uses_pyttsx3_first(tmp_path: Path):
    result = tts.speak("Good morning.", EN, tmp_path / "raw.wav", job_id="job-1")
    assert result.engine == "pyttsx3" and result.failures == ()
    assert probe_audio(result.wav_path).duration_s > 0.3


def test_hostile_text_is_only_ever_spoken(tmp_path: Path):
    marker = tmp_path / "pwned"
    text = f'-v xx $(touch {marker}) `touch {marker}`; touch {marker} <speak><audio src="x"/></speak> & done'
    result = tts.speak(text, EN, tmp_path / "raw.wav", job_id="job-1")
    assert not marker.exists()
    assert (tmp_path / "raw_text.txt").read_text(encoding="utf-8") == text
    assert probe_audio(result.wav_path).duration_s > 1.0


def _hang(voice, rate_wpm, text_file, out_wav):
    return ["sleep", "30"]


def test_a_hung_worker_is_killed_and_espeak_takes_over(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(tts, "worker_argv", _hang)
    started = time.monotonic()
    result = tts.speak("Still here.", EN, tmp_path / "raw.wav", job_id="job-1", timeout_s=1)
    assert time.monotonic() - started < 10
    assert result.engine == "espeak-ng"
    assert "did not finish within 1 s" in result.failures[0]
    assert probe_audio(result.wav_path).duration_s > 0.3


def test_hung_engines_end_in_a_tool_error(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(tts, "worker_argv", _hang)
    monkeypatch.setattr(tts, "espeak_argv", _hang)
    started = time.monotonic()
    with pytest.raises(ToolError) as caught:
        tts.speak("Anyone?", EN, tmp_path / "raw.wav", job_id="job-7", timeout_s=1)
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert "job-7" in message and "'en-us'" in message and message.count("did not finish") == 2
    assert not (tmp_path / "raw.wav").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_output_that_does_not_decode_is_a_failure(tmp_path: Path, monkeypatch):
    def junk(voice, rate_wpm, text_file, out_wav):
        return [sys.executable, "-c", f"open({str(out_wav)!r}, 'w').write('not a wav')"]

    monkeypatch.setattr(tts, "worker_argv", junk)
    result = tts.speak("Fine.", EN, tmp_path / "raw.wav", job_id="job-1")
    assert result.engine == "espeak-ng"
    assert "pyttsx3" in result.failures[0]


def test_unknown_voice_is_refused_before_any_engine(tmp_path: Path, monkeypatch):
    """pyttsx3 would quietly speak an unknown voice with its default one."""
    monkeypatch.setattr(tts, "worker_argv", _hang)
    with pytest.raises(UnavailableError) as caught:
        tts.speak("Hello.", VoiceSettings(voice="xx-nonexistent"), tmp_path / "raw.wav", job_id="job-9", timeout_s=20)
    message = str(caught.value)
    assert "job-9" in message and "'xx-nonexistent'" in message and "espeak-ng --voices" in message
    assert not (tmp_path / "raw.wav").exists()


def test_engine_failure_names_the_voice_and_the_job(tmp_path: Path, monkeypatch):
    def fail(voice, rate_wpm, text_file, out_wav):
        return [sys.executable, "-c", "import sys; sys.exit('no audio device today')"]

    monkeypatch.setattr(tts, "worker_argv", fail)
    monkeypatch.setattr(tts, "espeak_argv", fail)
    with pytest.raises(ToolError) as caught:
        tts.speak("Hello.", EN, tmp_path / "raw.wav", job_id="job-9")
    message = str(caught.value)
    assert "job-9" in message and "'en-us'" in message
    assert message.count("no audio device today") == 2  # each engine's stderr tail


def test_espeak_engine_skips_pyttsx3(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(tts, "worker_argv", _hang)  # would cost the timeout if it were tried
    voice = VoiceSettings(engine="espeak-ng", voice="en-us")
    result = tts.speak("Direct.", voice, tmp_path / "raw.wav", job_id="job-1", timeout_s=20)
    assert result.engine == "espeak-ng" and result.failures == ()


def test_unknown_engine_and_empty_text_are_job_errors(tmp_path: Path):
    with pytest.raises(JobError, match="unknown TTS engine 'festival'"):
        tts.speak("Hi.", VoiceSettings(engine="festival"), tmp_path / "raw.wav", job_id="job-1")
    with pytest.raises(JobError, match="empty"):
        tts.speak(" \n ", EN, tmp_path / "raw.wav", job_id="job-1")
