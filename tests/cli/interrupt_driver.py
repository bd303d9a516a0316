"""Run `avatar-batch ARGS...` held at one phase, for a test to signal it there.

    python interrupt_driver.py PHASE READY ARGS...

When the run reaches PHASE it creates the file READY and waits; the test
waits for READY, then sends its signal, so the signal lands in that phase
however busy the machine is. The wait ends after HOLD_LIMIT_S (a failure
limit only): a run that ignored the signal then finishes, and the test fails
on its exit code. The holds:

- plan: inside the library lock, before the plan is made;
- staging: just after the first job's staging folder is created;
- speech: in a text-to-speech program that hangs (the run waits on it);
- render: after two frames, with ffmpeg running and waiting for more;
- mux: the encoded video under its temporary name, before it is probed;
- commit: the first job's folder moved into the library, its manifest row not yet written.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from avatar_batch import batch, mux
from avatar_batch.cli import main
from avatar_batch.library import folders
from avatar_batch.library.store import Library
from avatar_batch.mux import encoder
from avatar_batch.speech import tts

HOLD_LIMIT_S = 30.0
RENDER_HOLD_FRAME = 2

# A TTS engine that says it started, then hangs: argv for `python -c`.
_HUNG_ENGINE = "import pathlib, sys, time; pathlib.Path(sys.argv[1]).touch(); time.sleep(float(sys.argv[2]))"


def hold(ready: Path) -> None:
    ready.touch()
    time.sleep(HOLD_LIMIT_S)


def held_after(function, ready: Path):
    def wrapper(*args, **kwargs):
        result = function(*args, **kwargs)
        hold(ready)
        return result

    return wrapper


def held_before(function, ready: Path):
    def wrapper(*args, **kwargs):
        hold(ready)
        return function(*args, **kwargs)

    return wrapper


def hold_in_render(ready: Path) -> None:
    real_encode = mux.encode

    def encode(frames, *args, **kwargs):
        def frames_then_hold():
            for index, frame in enumerate(frames):
                if index == RENDER_HOLD_FRAME:
                    hold(ready)
                yield frame

        return real_encode(frames_then_hold(), *args, **kwargs)

    mux.encode = encode


def hold_in_speech(ready: Path) -> None:
    def hung_engine(voice: str, rate_wpm: int, text_file: Path, out_wav: Path) -> list[str]:
        return [sys.executable, "-c", _HUNG_ENGINE, str(ready), str(HOLD_LIMIT_S)]

    tts.argv_builder = lambda engine: hung_engine


def install(phase: str, ready: Path) -> None:
    if phase == "plan":
        batch.make_plan = held_before(batch.make_plan, ready)
    elif phase == "staging":
        Library.staging_dir = held_after(Library.staging_dir, ready)
    elif phase == "speech":
        hold_in_speech(ready)
    elif phase == "render":
        hold_in_render(ready)
    elif phase == "mux":
        encoder.probe = held_before(encoder.probe, ready)
    elif phase == "commit":
        folders.place = held_after(folders.place, ready)
    else:
        raise SystemExit(f"unknown phase {phase!r}")


if __name__ == "__main__":
    install(sys.argv[1], Path(sys.argv[2]))
    sys.argv = ["avatar-batch", *sys.argv[3:]]
    main()
