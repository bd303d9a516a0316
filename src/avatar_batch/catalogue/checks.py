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
    return locate_file(written, loc, ctx, "recording")


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
