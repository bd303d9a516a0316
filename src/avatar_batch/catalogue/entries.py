"""Validate one entry section and turn it into an `Entry` record.

An entry is checked against the defaults and the personas (already checked):
its id, persona, preset and size, its texts per language, a voice for every
language it speaks, and its recordings (via `checks`). Duplicate ids across
entries are found by `duplicate_id_problems`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from avatar_batch.catalogue.checks import PathContext, check_audio
from avatar_batch.catalogue.locate import suggest
from avatar_batch.catalogue.personas import ID_FIX, ID_PATTERN, LANGUAGE_FIX, LANGUAGE_PATTERN
from avatar_batch.catalogue.schema import DefaultsModel, EntryModel
from avatar_batch.core.errors import Problem, UsageError
from avatar_batch.core.records import PRESETS, Entry
from avatar_batch.core.settings import parse_size


@dataclass(frozen=True)
class EntryContext:
    paths: PathContext
    defaults: DefaultsModel
    persona_ids: frozenset[str]  # every persona written, valid or not
    persona_voices: Mapping[str, Mapping[str, object]]  # persona -> language -> voice as written, where readable


def build_entry(index: int, model: EntryModel, ctx: EntryContext) -> tuple[Entry | None, list[Problem]]:
    loc = ("entries", index)
    at = ctx.paths.locator.problem
    problems: list[Problem] = []
    if not ID_PATTERN.match(model.id):
        problems.append(at(loc + ("id",), "entry id is not usable in file names", value=model.id, fix=ID_FIX))
    if not model.department.strip():
        problems.append(at(loc + ("department",), "department is empty", fix="name the department, e.g. 'cardiology'"))
    persona_id, found = _persona(model, loc, ctx)
    problems += found
    problems += _preset_problems(model, loc, ctx)
    size, found = _size(model, loc, ctx)
    problems += found
    answer, found = _texts(model.answer, loc + ("answer",), ctx)
    problems += found
    question, found = _texts(model.question, loc + ("question",), ctx)
    problems += found
    problems += _language_problems(answer, question, loc, ctx, persona_id)
    audio, found = _audio(model, answer, loc, ctx)
    problems += found
    if any(p.severity == "error" for p in problems) or persona_id is None:
        return None, problems
    languages = tuple(answer)
    entry = Entry(
        id=model.id,
        persona=persona_id,
        department=model.department.strip(),
        question={language: question[language] for language in languages},
        answer=answer,
        languages=languages,
        audio=audio,
        preset=model.preset,
        size=size,
        sink_refresh=model.sink_refresh,
        fallback_to_still=model.fallback_to_still,
        line=ctx.paths.locator.line(loc),
    )
    return entry, problems


def duplicate_id_problems(ids: list[tuple[int, str]], ctx: PathContext) -> list[Problem]:
    """One problem per repeated id, naming the line of its first use."""
    first_index: dict[str, int] = {}
    problems = []
    for index, entry_id in ids:
        if entry_id not in first_index:
            first_index[entry_id] = index
            continue
        first_line = ctx.locator.line(("entries", first_index[entry_id]))
        line = ctx.locator.line(("entries", index))
        message = f"entry id '{entry_id}' is used twice: lines {first_line} and {line}"
        fix = "give each entry its own id (ids name the videos in the library)"
        problems.append(ctx.locator.problem(("entries", index, "id"), message, value=entry_id, fix=fix))
    return problems


def _persona(model: EntryModel, loc: tuple, ctx: EntryContext) -> tuple[str | None, list[Problem]]:
    persona_id = model.persona or ctx.defaults.persona
    at = ctx.paths.locator.problem
    if persona_id is None:
        fix = "add 'persona: <id>' to the entry or 'persona' to defaults"
        return None, [at(loc + ("persona",), "entry has no persona and defaults name none", fix=fix)]
    if persona_id not in ctx.persona_ids:
        if model.persona is None:
            return None, []  # an unknown defaults.persona is reported once, with the defaults
        fix = suggest(persona_id, ctx.persona_ids, "persona")
        return None, [at(loc + ("persona",), f"unknown persona '{persona_id}'", value=persona_id, fix=fix)]
    return persona_id, []


def _preset_problems(model: EntryModel, loc: tuple, ctx: EntryContext) -> list[Problem]:
    if model.preset is None or model.preset in PRESETS:
        return []
    message, fix = f"unknown preset '{model.preset}'", suggest(model.preset, PRESETS, "preset")
    return [ctx.paths.locator.problem(loc + ("preset",), message, value=model.preset, fix=fix)]


def _size(model: EntryModel, loc: tuple, ctx: EntryContext) -> tuple[str | None, list[Problem]]:
    """The size override written as 'W*H', the form every later stage reads."""
    if model.size is None:
        return None, []
    try:
        width_px, height_px = parse_size(model.size)
    except UsageError as exc:
        fix = "write WIDTH*HEIGHT in pixels, e.g. '704*384' (or leave it out to use the preset's)"
        return None, [ctx.paths.locator.problem(loc + ("size",), str(exc), value=model.size, fix=fix)]
    return f"{width_px}*{height_px}", []


def _texts(written: str | dict[str, str], loc: tuple, ctx: EntryContext) -> tuple[dict[str, str], list[Problem]]:
    """Language -> stripped text. A plain text belongs to the first default language."""
    at = ctx.paths.locator.problem
    if isinstance(written, str):
        texts, locs = {ctx.defaults.languages[0]: written}, {ctx.defaults.languages[0]: loc}
    else:
        texts, locs = dict(written), {language: loc + (language,) for language in written}
    problems = []
    if not texts:
        problems.append(at(loc, "has no languages", fix="write the text, or {en: '...'} per language"))
    for language, text in texts.items():
        if not LANGUAGE_PATTERN.match(language):
            problems.append(at(locs[language], "not a language code", value=language, fix=LANGUAGE_FIX))
        if not text.strip():
            problems.append(at(locs[language], f"{loc[-1]} text is empty", value=text, fix="write the text"))
    return {language: text.strip() for language, text in texts.items()}, problems


def _language_problems(
    answer: dict[str, str], question: dict[str, str], loc: tuple, ctx: EntryContext, persona_id: str | None
) -> list[Problem]:
    at = ctx.paths.locator.problem
    problems = []
    for language in answer:
        if language not in question:
            message = f"no question in '{language}' for the '{language}' answer"
            fix = f"add question.{language}, or remove answer.{language}"
            problems.append(at(loc + ("question",), message, fix=fix))
    for language in question:
        if language not in answer:
            message = f"question in '{language}' has no answer, so no '{language}' video is made"
            fix = f"add answer.{language}, or remove question.{language}"
            problems.append(at(loc + ("question", language), message, fix=fix, severity="warning"))
    voices = ctx.persona_voices.get(persona_id) if persona_id else None
    for language in answer if voices is not None else ():
        if voices is not None and language not in voices:
            message = f"language '{language}' has no voice in persona '{persona_id}'"
            fix = f"add voices.{language} to persona '{persona_id}', or remove the '{language}' texts"
            problems.append(at(loc + ("answer", language), message, value=language, fix=fix))
    return problems


def _audio(
    model: EntryModel, answer: dict[str, str], loc: tuple, ctx: EntryContext
) -> tuple[dict[str, Path], list[Problem]]:
    audio: dict[str, Path] = {}
    problems = []
    for language, written in model.audio.items():
        where = loc + ("audio", language)
        if language not in answer:
            fix = f"add answer.{language}, or remove audio.{language}"
            message = f"recording in '{language}', but the entry has no '{language}' answer"
            problems.append(ctx.paths.locator.problem(where, message, value=written, fix=fix))
            continue
        path, found = check_audio(written, where, ctx.paths)
        problems += found
        if path is not None:
            audio[language] = path
    return audio, problems
