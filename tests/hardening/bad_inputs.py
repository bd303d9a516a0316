"""The bad-input corpus's shared parts: the case record and the helpers that
break a fresh copy of the smoke project. The cases themselves live in
`bad_catalogues` (the YAML) and `bad_files` (the files it names).

Each case edits the project and returns the catalogue path to run, with the
exit code `validate` and `render` must give and patterns (regular
expressions) their message must contain: the file, and where the problem is
inside a catalogue, the entry and the field.
"""

from __future__ import annotations

import io
import struct
import wave
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.hardening.projects import Project

CATALOGUE = r"smoke\.yaml"
FIRST = r"entry 'smoke-register'"


@dataclass(frozen=True)
class BadCase:
    name: str
    make: Callable[[Project], Path]
    code: int
    expect: tuple[str, ...]
    unreadable: bool = False  # needs a file the test makes unreadable


def case_collector(cases: list[BadCase]):
    """A decorator that adds the function it decorates to `cases`, named after it."""

    def case(code: int, *expect: str, unreadable: bool = False):
        def register(make: Callable[[Project], Path]) -> Callable[[Project], Path]:
            cases.append(BadCase(make.__name__.replace("_", "-"), make, code, expect, unreadable))
            return make

        return register

    return case


# --- helpers ----------------------------------------------------------------------


def edit_text(project: Project, old: str, new: str) -> Path:
    text = project.catalogue.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in the smoke catalogue"
    project.catalogue.write_text(text.replace(old, new, 1), encoding="utf-8")
    return project.catalogue


def edit_data(project: Project, change: Callable[[dict], None]) -> Path:
    data = project.data()
    change(data)
    project.write(data)
    return project.catalogue


def set_image(project: Project, written: str) -> Path:
    return edit_data(project, lambda d: d["personas"]["dr_chen"].__setitem__("image", written))


def set_prompt_file(project: Project, content: bytes) -> Path:
    (project.root / "prompts" / "bad.txt").write_bytes(content)
    return edit_data(project, lambda d: d["personas"]["dr_chen"].__setitem__("prompt", "../prompts/bad.txt"))


def set_audio(project: Project, written: str) -> Path:
    return edit_data(project, lambda d: d["entries"][0].__setitem__("audio", {"en": written}))


def wav_bytes(duration_s: float = 0.5, rate_hz: int = 16_000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate_hz)
        handle.writeframes(b"\x10\x00" * int(duration_s * rate_hz))
    return buffer.getvalue()


def png_header_only(width_px: int, height_px: int) -> bytes:
    """A PNG whose header claims `width_px` x `height_px`, with no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width_px, height_px, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def outside_file(project: Project, name: str, content: bytes) -> Path:
    """A file next to the project folder, so outside its catalogue root."""
    path = project.root.parent / f"outside-{name}"
    path.write_bytes(content)
    return path
