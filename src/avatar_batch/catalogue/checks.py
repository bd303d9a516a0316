"""Checks of the files a catalogue names: portraits, recordings, prompt templates.

Each check takes a path the catalogue wrote, resolves it under the rule in
`paths`, opens the file the way later stages will and returns Problems (a
small portrait is a warning; everything else here is an error). They read
files but never change them, and know nothing of entries or personas beyond
the position they are given for messages.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from avatar_batch.catalogue.locate import Locator
from avatar_batch.catalogue.paths import PathRefused, resolve_inside
from avatar_batch.catalogue.prompt import PROMPT_FIELDS, template_problems
from avatar_batch.core.errors import Problem

# Live Avatar conditions on a reference frame of at least the largest preset's
# short side; a smaller portrait still renders, only blurrier.
MIN_PORTRAIT_PX = 512
# Below the smallest video side (64 px) a portrait is upscaled into a blur
# with no face left to animate: an error, not a warning.
MIN_USABLE_PORTRAIT_PX = 64
AUDIO_SUFFIXES = (".wav", ".mp3", ".m4a", ".flac", ".ogg")
MAX_PROMPT_BYTES = 64 * 1024


@dataclass(frozen=True)
class PathContext:
    """What every path check needs: where paths start and where they must stay."""

    base: Path  # the catalogue's folder, resolved
    root: Path  # the catalogue root, resolved
    locator: Locator


def locate_file(written: str, loc: tuple, ctx: PathContext, what: str) -> tuple[Path | None, list[Problem]]:
    """Resolve a path to an existing, readable file."""
    found = resolve_inside(written, ctx.base, ctx.root)
    if isinstance(found, PathRefused):
        return None, [ctx.locator.problem(loc, f"{what}: {found.message}", value=written, fix=found.fix)]
    if not found.exists():
        fix = f"create the file or correct the path (relative to {ctx.base})"
        return None, [ctx.locator.problem(loc, f"{what} not found: {found}", value=written, fix=fix)]
    if not found.is_file():
        return None, [ctx.locator.problem(loc, f"{what} is not a file: {found}", value=written, fix="name a file")]
    try:
        with open(found, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        fix = "check the file's permissions"
        return None, [ctx.locator.problem(loc, f"{what} cannot be read: {exc.strerror}", value=written, fix=fix)]
    return found, []


def check_image(written: str, loc: tuple, ctx: PathContext) -> tuple[Path | None, list[Problem]]:
    path, problems = locate_file(written, loc, ctx, "portrait image")
    if path is None:
        return None, problems
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()  # decode every pixel now, not halfway through a render
                width_px, height_px = image.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        fix = "save it again as PNG or JPEG"
        return None, [ctx.locator.problem(loc, f"portrait image cannot be decoded: {exc}", value=written, fix=fix)]
    if min(width_px, height_px) < MIN_USABLE_PORTRAIT_PX:
        message = f"portrait is {width_px}×{height_px} px, too small to show a face"
        fix = f"use a portrait at least {MIN_PORTRAIT_PX} px on each side"
        return None, [ctx.locator.problem(loc, message, value=written, fix=fix)]
    if min(width_px, height_px) < MIN_PORTRAIT_PX:
        minimum = f"{MIN_PORTRAIT_PX}×{MIN_PORTRAIT_PX}"
        message = f"portrait is {width_px}×{height_px} px, under {minimum}; videos will look soft"
        fix = f"use a portrait at least {MIN_PORTRAIT_PX} px on each side"
        return path, [ctx.locator.problem(loc, message, value=written, fix=fix, severity="warning")]
    return path, []


def check_audio(written: str, loc: tuple, ctx: PathContext) -> tuple[Path | None, list[Problem]]:
    suffix = Path(written).suffix.lower()
    if suffix not in AUDIO_SUFFIXES:
        message = f"recording has an unsupported extension '{suffix or '(none)'}'"
        fix = f"convert it to one of {', '.join(AUDIO_SUFFIXES)}"
        return None, [ctx.locator.problem(loc, message, value=written, fix=fix)]
    path, problems = locate_file(written, loc, ctx, "recording")
    reason = recording_problem(path) if path is not None else None
    if reason is not None:
        fix = "export the recording again (a whole file, in the format its extension names)"
        return None, [ctx.locator.problem(loc, f"recording {reason}", value=written, fix=fix)]
    return path, problems


def recording_problem(path: Path) -> str | None:
    """Why a recording is not a whole file of the format its extension names,
    judged from its header (and for WAV its chunk sizes); None if it looks whole.
    ffmpeg would turn a cut or mislabelled file into a clipped or failed job
    halfway through a batch, so it is refused before anything runs."""
    size_bytes = path.stat().st_size
    if size_bytes == 0:
        return "file is empty"
    suffix = path.suffix.lower()
    with open(path, "rb") as handle:
        if suffix == ".wav":
            return _wav_problem(handle, size_bytes)
        head = handle.read(12)
    looks_right = {
        ".mp3": head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0),
        ".m4a": head[4:8] == b"ftyp",
        ".flac": head[:4] == b"fLaC",
        ".ogg": head[:4] == b"OggS",
    }.get(suffix, True)
    return None if looks_right else f"is not {_AUDIO_KINDS[suffix]} file (its first bytes are no such header)"


_AUDIO_KINDS = {".mp3": "an MP3", ".m4a": "an M4A (MP4 audio)", ".flac": "a FLAC", ".ogg": "an Ogg"}


def _wav_problem(handle, size_bytes: int) -> str | None:
    """Walk the RIFF chunks to `data`: a `fmt ` chunk first, then as many
    bytes as `data` declares. A declared size of 0 or 0xFFFFFFFF means a
    streaming writer did not know it; then any bytes at all will do."""
    riff = handle.read(12)
    if len(riff) < 12 or riff[:4] not in (b"RIFF", b"RF64") or riff[8:12] != b"WAVE":
        return "is not a WAV file (no RIFF/WAVE header)"
    if riff[:4] == b"RF64":
        return None  # 64-bit sizes live in a ds64 chunk; ffmpeg reads those
    position, seen_format = 12, False
    while True:
        header = handle.read(8)
        if len(header) < 8:
            return "is truncated: it ends before its audio data"
        kind, length = header[:4], int.from_bytes(header[4:], "little")
        position += 8
        if kind == b"data":
            available = size_bytes - position
            if not seen_format:
                return "is not a WAV file (audio data before the format chunk)"
            if length in (0, 0xFFFFFFFF):
                return None if available > 0 else "holds no audio (no samples after its header)"
            if length > available:
                return f"is truncated: its header declares {length} bytes of audio, the file holds {available}"
            return None
        seen_format = seen_format or kind == b"fmt "
        position += length + (length & 1)  # chunks are padded to even sizes
        handle.seek(position)


def check_prompt(written: str, loc: tuple, ctx: PathContext) -> tuple[str | None, Path | None, list[Problem]]:
    """Read and check a prompt template; return (template, path, problems)."""
    path, problems = locate_file(written, loc, ctx, "prompt template")
    if path is None:
        return None, None, problems

    def refused(message: str, fix: str) -> Problem:
        return ctx.locator.problem(loc, f"prompt template {message}", value=written, fix=fix)

    data = path.read_bytes()[: MAX_PROMPT_BYTES + 1]
    if len(data) > MAX_PROMPT_BYTES:
        return None, path, [refused(f"is over {MAX_PROMPT_BYTES} bytes", "a prompt is a paragraph or two; shorten it")]
    try:
        template = data.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        return None, path, [refused(f"is not UTF-8 text ({exc.reason})", "save the file as UTF-8")]
    if not template:
        return None, path, [refused("is empty", "write the prompt")]
    fields = ", ".join("{" + name + "}" for name in PROMPT_FIELDS)
    fix = f"use only {fields}; write literal braces as '{{{{' and '}}}}'"
    found = [refused(f"{path.name}: {message}", fix) for message in template_problems(template)]
    return (None if found else template), path, found
