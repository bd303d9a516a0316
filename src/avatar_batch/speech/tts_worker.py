"""Speak one text file into one WAV with pyttsx3, then exit.

Run only as a child process (`python -m avatar_batch.speech.tts_worker`):
pyttsx3's Linux driver drives libespeak-ng in-process and can hang, so the
parent runs this under a timeout and kills it if needed. The text comes from
a file, never argv, because answer text is untrusted. Exit codes: 0 written,
2 pyttsx3 raised, 3 pyttsx3 returned but wrote nothing.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

EXIT_ENGINE_FAILED = 2
EXIT_NOTHING_WRITTEN = 3

# The parent's timeout is what bounds a hung engine; this only keeps an
# orphaned worker from waiting forever.
FINISH_WAIT_S = 600.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="avatar_batch.speech.tts_worker")
    parser.add_argument("--voice", required=True, help="espeak-ng voice id, e.g. en-us or cmn")
    parser.add_argument("--rate", required=True, type=int, help="speaking rate in words per minute")
    parser.add_argument("--text-file", required=True, type=Path, help="UTF-8 text to speak")
    parser.add_argument("--out", required=True, type=Path, help="WAV file to write")
    return parser.parse_args(argv)


def speak_to_file(text: str, voice: str, rate_wpm: int, out: Path) -> None:
    import pyttsx3  # imported here so `--help` works without an audio stack

    engine = pyttsx3.init()
    engine.setProperty("voice", voice)
    engine.setProperty("rate", rate_wpm)
    # With the espeak driver, runAndWait returns as soon as synthesis has
    # *started*; the WAV is written later from espeak's callback thread, and
    # exiting first leaves an empty file (seen with the cmn voice). The
    # driver announces "finished-utterance" after writing, so wait for that.
    finished = threading.Event()
    outcome: dict[str, bool] = {}

    def on_finished(name=None, completed=True):
        outcome["completed"] = bool(completed)
        finished.set()

    # The driver writes the WAV inside espeak's C callback: an error there
    # (a full disk) is only "unraisable", and "finished-utterance" never
    # comes. Catch it, so the worker fails at once instead of at the timeout.
    failures: list[BaseException] = []

    def on_unraisable(unraisable) -> None:
        failures.append(unraisable.exc_value)
        finished.set()

    sys.unraisablehook = on_unraisable
    engine.connect("finished-utterance", on_finished)
    engine.save_to_file(text, str(out))
    engine.runAndWait()
    if not finished.wait(FINISH_WAIT_S) or failures or not outcome.get("completed"):
        reason = f": {failures[0]}" if failures else ""
        raise RuntimeError(f"speech synthesis did not complete{reason}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    text = args.text_file.read_text(encoding="utf-8")
    if not text.strip():
        # pyttsx3 would start no synthesis and so never finish; say so instead
        print(f"nothing to speak in {args.text_file}", file=sys.stderr)
        return EXIT_NOTHING_WRITTEN
    try:
        speak_to_file(text, args.voice, args.rate, args.out)
    except Exception as exc:  # noqa: BLE001 - the parent reads this line as the reason; any failure means "no audio"
        print(f"pyttsx3 failed for voice {args.voice!r}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ENGINE_FAILED
    if not args.out.is_file() or args.out.stat().st_size == 0:
        print(f"pyttsx3 wrote no audio to {args.out} for voice {args.voice!r}", file=sys.stderr)
        return EXIT_NOTHING_WRITTEN
    return 0


if __name__ == "__main__":
    sys.exit(main())
