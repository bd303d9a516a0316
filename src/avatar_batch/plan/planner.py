"""Decide what a run does: which jobs render, which are already done, which
library rows no longer belong to the catalogue.

Pure apart from the optional WAV header read that sizes a recorded answer;
the library's own check of a row (`verified`) is passed in, so this module
never touches the library folder.
"""

from __future__ import annotations

import re
import wave
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from avatar_batch.core.records import JobSpec, LibraryItem

# Rough speaking rates for the run-time estimate only. 160 wpm of English is
# about 14 characters a second counting spaces; Mandarin and Japanese TTS speak
# about 4.5 characters (syllables) a second.
LATIN_CHARS_PER_S = 14.0
CJK_CHARS_PER_S = 4.5
CJK_LANGUAGES = frozenset({"zh", "ja", "ko", "yue", "cmn", "wuu"})
DONE_STATUSES = frozenset({"completed", "fallback"})


@dataclass(frozen=True)
class Plan:
    to_render: tuple[JobSpec, ...]
    to_skip: tuple[JobSpec, ...]
    to_retire: tuple[LibraryItem, ...]
    estimated_video_s: float

    @property
    def pending(self) -> bool:
        """True when a run would change the library."""
        return bool(self.to_render or self.to_retire)


# Han, kana, Hangul and their punctuation/full-width forms: each spoken (or
# paused on) at about the rate of a syllable.
_CJK_CHARS = re.compile(
    "[\u1100-\u11ff\u3000-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\U00020000-\U0002fa1f]"
)
_SPACES = re.compile(r"\s")


def estimate_speech_s(text: str, language: str) -> float:
    """Seconds of speech for `text`, counted per character by script.

    In a CJK language a space is not spoken (it only separates a Latin word),
    so whitespace is skipped there; in other languages the Latin rate already
    counts spaces.
    """
    num_cjk = len(_CJK_CHARS.findall(text))
    num_other = len(text) - num_cjk
    if language.split("-")[0].lower() in CJK_LANGUAGES:
        num_other -= len(_SPACES.findall(text))
    return num_cjk / CJK_CHARS_PER_S + num_other / LATIN_CHARS_PER_S


def wav_duration_s(path: Path) -> float | None:
    """Duration from a WAV header, or None when the file is not a readable WAV
    (other formats are sized by the text estimate instead)."""
    try:
        with wave.open(str(path), "rb") as reader:
            rate_hz = reader.getframerate()
            return reader.getnframes() / rate_hz if rate_hz else None
    except (OSError, EOFError, wave.Error):
        return None


def make_plan(
    jobs: Sequence[JobSpec],
    items: Mapping[str, LibraryItem],
    verified: Callable[[LibraryItem], bool],
    force: bool = False,
    retire_missing: bool = True,
    audio_duration_s: Callable[[Path], float | None] = wav_duration_s,
) -> Plan:
    """Split `jobs` into render and skip, and find rows to retire.

    A job is skipped when the library has a completed (or fallback) row with
    its id whose files check out, unless `force`. Failed rows are retried.
    Pass `retire_missing=False` when `jobs` covers only part of the catalogue
    (`--only`): a row whose entry was merely not selected is not gone.
    """
    to_render: list[JobSpec] = []
    to_skip: list[JobSpec] = []
    for job in jobs:
        item = items.get(job.job_id)
        done = item is not None and item.status in DONE_STATUSES
        if item is not None and done and not force and verified(item):
            to_skip.append(job)
        else:
            to_render.append(job)
    to_retire: list[LibraryItem] = []
    if retire_missing:
        keys = {job.key for job in jobs}
        to_retire = [
            item for item in items.values() if item.status != "retired" and (item.entry_id, item.language) not in keys
        ]
        to_retire.sort(key=lambda item: (item.entry_id, item.language, item.job_id))
    estimate_s = sum(job_speech_s(job, audio_duration_s) for job in to_render)
    return Plan(tuple(to_render), tuple(to_skip), tuple(to_retire), round(estimate_s, 1))


def job_speech_s(job: JobSpec, audio_duration_s: Callable[[Path], float | None] = wav_duration_s) -> float:
    """Expected seconds of speech: the recording's length, else the text estimate.
    Also a job's expected render cost (parallel runs start the longest first)."""
    if job.audio_path is not None:
        known_s = audio_duration_s(job.audio_path)
        if known_s is not None:
            return known_s
    return estimate_speech_s(job.answer, job.language)
