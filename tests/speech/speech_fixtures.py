"""Speech-stage test helpers: jobs, generated audio, independent measurements."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import replace
from pathlib import Path

from avatar_batch.core.records import JobSpec, RenderSettings, VoiceSettings
from tests.conftest import write_sine_wav


def make_job(answer: str = "Hello there. How can I help?", voice: str = "en-us", **changes) -> JobSpec:
    job = JobSpec(
        job_id="job-test",
        entry_id="returns",
        language="en",
        persona="ada",
        department="support",
        question="What is this?",
        answer=answer,
        image_path=Path("portrait.png"),
        prompt="A person speaking.",
        voice=VoiceSettings(voice=voice),
        audio_path=None,
        settings=RenderSettings(),
    )
    return replace(job, **changes)


def write_tone_wav(path: Path, duration_s: float = 1.0, rate_hz: int = 44_100, amplitude: float = 0.1) -> Path:
    """A 220 Hz tone with a 3 Hz loudness wobble, like syllables; quiet on purpose
    so normalisation has work to do."""
    return write_sine_wav(path, duration_s, rate_hz, 220.0, amplitude)


def ffprobe_audio(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
         "stream=codec_name,sample_rate,channels,duration", "-of", "json", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return json.loads(out)["streams"][0]


def ebur128(path: Path) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) measured by ffmpeg's ebur128 filter,
    independently of the loudnorm measurements the code under test uses."""
    stderr = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-i", str(path),
         "-af", "ebur128=peak=true", "-f", "null", "-"],
        check=True, capture_output=True, text=True,
    ).stderr  # fmt: skip
    summary = stderr[stderr.rindex("Summary:") :]
    integrated = float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))
    peak = float(re.search(r"Peak:\s+(-?[\d.]+) dBFS", summary).group(1))
    return integrated, peak
