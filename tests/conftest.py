"""Shared fixtures: small real inputs made on the fly (no downloads)."""

from __future__ import annotations

import math
import os
import sys
import threading
import wave
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]

# Ignore SIGINT, then exec argv: what a non-interactive shell does to `argv &`.
# The ignored disposition survives exec, and Python then leaves it ignored.
_EXEC_IGNORING_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); os.execvp(sys.argv[1], sys.argv[1:])"
)


def with_sigint_ignored(argv: list[str]) -> list[str]:
    """`argv` started the way a background job of a script starts: SIGINT ignored."""
    return [sys.executable, "-c", _EXEC_IGNORING_SIGINT, *argv]


def process_alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie waiting for its parent's wait() does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text(encoding="ascii")


def write_sine_wav(
    path: Path, duration_s: float = 1.0, rate_hz: int = 16_000, freq_hz: float = 220.0, amplitude: float = 0.3
) -> Path:
    """Mono 16-bit tone with a 3 Hz syllable-like loudness wobble."""
    t = np.arange(int(duration_s * rate_hz)) / rate_hz
    envelope = 0.5 + 0.5 * np.sin(2 * math.pi * 3 * t)
    samples = (amplitude * envelope * np.sin(2 * math.pi * freq_hz * t) * 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate_hz)
        handle.writeframes(samples.tobytes())
    return path


def write_portrait(path: Path, size=(512, 640), colour=(200, 170, 150)) -> Path:
    image = Image.new("RGB", size, (235, 240, 245))
    w, h = size
    pixels = np.asarray(image).copy()
    yy, xx = np.mgrid[0:h, 0:w]
    face = ((xx - w / 2) / (w * 0.22)) ** 2 + ((yy - h * 0.4) / (h * 0.25)) ** 2 <= 1
    pixels[face] = colour
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """The tiny random checkpoint (`weights tiny`, seed 0), written once for the whole run:
    writing one takes seconds. Tests only read it; a test that damages weights writes its own."""
    from avatar_batch.render.liveavatar.checkpoint import write_tiny_checkpoint

    root = tmp_path_factory.mktemp("tiny-weights")
    write_tiny_checkpoint(root)
    return root


@pytest.fixture
def sine_wav(tmp_path: Path) -> Path:
    return write_sine_wav(tmp_path / "speech_16k.wav")


@pytest.fixture
def portrait(tmp_path: Path) -> Path:
    return write_portrait(tmp_path / "portrait.png")


@contextmanager
def serving(library: Path):
    """`avatar-batch serve` on 127.0.0.1 and a free port, in a thread."""
    from avatar_batch.library.serve import make_server

    server = make_server(library, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
