"""Text to a WAV file with a local TTS engine, each attempt in its own process.

Engines, in the order tried for each `VoiceSettings.engine`:
- "pyttsx3": the pyttsx3 worker (`tts_worker`), then the espeak-ng command
  line. pyttsx3 drives libespeak-ng underneath, so the fallback speaks with
  the same voice; it exists because the in-process driver can hang or fail.
- "espeak-ng": the espeak-ng command line only.
- "command": the catalogue's own program (`command`), with no fallback: a
  different engine would speak in a different voice.
An espeak-ng voice must be one espeak-ng has: pyttsx3 quietly keeps its default voice
when given an unknown one (a Chinese answer in an English voice), so the
voice is checked against `espeak-ng --voices` before any engine runs. Every
attempt runs under a timeout and its output must decode to more than zero
seconds of audio. Knows nothing about loudness or captions.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from avatar_batch.core import proc
from avatar_batch.core.errors import JobError, ToolError, UnavailableError
from avatar_batch.core.fsio import atomic_path, write_text_atomic
from avatar_batch.core.records import VoiceSettings
from avatar_batch.speech import audio, command
from avatar_batch.speech.voices import installed_voices, knows_voice

ENGINE_PYTTSX3 = "pyttsx3"
ENGINE_ESPEAK = "espeak-ng"
ENGINE_COMMAND = "command"
ENGINE_ORDER: Mapping[str, tuple[str, ...]] = {
    ENGINE_PYTTSX3: (ENGINE_PYTTSX3, ENGINE_ESPEAK),
    ENGINE_ESPEAK: (ENGINE_ESPEAK,),
    ENGINE_COMMAND: (ENGINE_COMMAND,),
}

ArgvBuilder = Callable[[str, int, Path, Path], list[str]]


@dataclass(frozen=True)
class TtsResult:
    wav_path: Path
    engine: str  # the engine that produced the file
    failures: tuple[str, ...] = ()  # why earlier engines in the order did not


def worker_argv(voice: str, rate_wpm: int, text_file: Path, out_wav: Path) -> list[str]:
    return [
        sys.executable, "-m", "avatar_batch.speech.tts_worker",
        "--voice", voice, "--rate", str(rate_wpm),
        "--text-file", str(text_file), "--out", str(out_wav),
    ]  # fmt: skip


def espeak_argv(voice: str, rate_wpm: int, text_file: Path, out_wav: Path) -> list[str]:
    # No -m: SSML/markup in the answer is read as text, never interpreted.
    return ["espeak-ng", "-v", voice, "-s", str(rate_wpm), "-f", str(text_file), "-w", str(out_wav)]


def argv_builder(engine: str) -> ArgvBuilder:
    """Looked up at call time, so a test can swap in a builder for a hung engine."""
    return {ENGINE_PYTTSX3: worker_argv, ENGINE_ESPEAK: espeak_argv}[engine]


def engines_for(voice: VoiceSettings, job_id: str) -> tuple[str, ...]:
    if voice.engine not in ENGINE_ORDER:
        raise JobError(f"job {job_id}: unknown TTS engine {voice.engine!r}. Fix: use one of {', '.join(ENGINE_ORDER)}")
    if (voice.engine == ENGINE_COMMAND) != (voice.command is not None):
        raise JobError(f"job {job_id}: TTS engine {voice.engine!r} and the voice's command disagree")
    return ENGINE_ORDER[voice.engine]


def check_voice(voice: VoiceSettings, job_id: str) -> None:
    if not knows_voice(voice.voice, installed_voices()):
        raise UnavailableError(
            f"job {job_id}: TTS voice {voice.voice!r} is not installed. Fix: pick a voice id from "
            "`espeak-ng --voices` (e.g. en-us, cmn) for this persona and language, or install it"
        )


def _attempt(engine: str, voice: VoiceSettings, text_file: Path, out_wav: Path, timeout_s: float) -> None:
    """One engine, one process; the WAV appears at `out_wav` only if it decodes."""
    label = f"{engine} TTS (voice {voice.voice!r})"
    with atomic_path(out_wav) as tmp:
        if voice.command is not None:
            command.run_command(voice.command, text_file, tmp, timeout_s)
        else:
            argv = argv_builder(engine)(voice.voice, voice.rate_wpm, text_file, tmp)
            proc.run(argv, timeout_s=timeout_s, what=label)
        audio.probe_audio(tmp)  # raises ToolError unless it decodes to > 0 s


def speak(text: str, voice: VoiceSettings, out_wav: Path, *, job_id: str, timeout_s: float = 120.0) -> TtsResult:
    """Speak `text` into `out_wav`, trying the engines in order; ToolError if none works."""
    if not text.strip():
        raise JobError(f"job {job_id}: the answer text is empty, so there is nothing to speak")
    engines = engines_for(voice, job_id)
    if voice.command is None:
        check_voice(voice, job_id)
    text_file = out_wav.with_name(out_wav.stem + "_text.txt")
    write_text_atomic(text_file, text)
    failures: list[str] = []
    for engine in engines:
        try:
            _attempt(engine, voice, text_file, out_wav, timeout_s)
        except ToolError as exc:  # the next engine in the order is the designed fallback
            failures.append(f"{engine}: {exc}")
            continue
        return TtsResult(wav_path=out_wav, engine=engine, failures=tuple(failures))
    raise ToolError(
        f"job {job_id}: text-to-speech failed for voice {voice.voice!r} with every engine "
        f"({', '.join(engines)}). Fix: run `avatar-batch doctor` to check the TTS tools.\n" + "\n".join(failures)
    )
