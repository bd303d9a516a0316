"""Load a catalogue file into a validated `Catalogue` record.

Steps: (1) read and parse the YAML, keeping line numbers; (2) check the
structure of each section with the pydantic models; (3) check meaning and the
files named (personas, then entries against them); (4) raise one
`CatalogueError` listing every error found, or return the `Catalogue` with
the warnings as rendered strings. A persona or entry whose structure is broken
is reported and not checked further; every other section still is. Nothing
here renders, speaks or writes. Where paths may point: see `paths`.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import yaml

from avatar_batch.catalogue.checks import PathContext
from avatar_batch.catalogue.entries import EntryContext, build_entry, duplicate_id_problems
from avatar_batch.catalogue.locate import Locator, suggest
from avatar_batch.catalogue.paths import PathRefused, find_catalogue_root, resolve_inside
from avatar_batch.catalogue.personas import LANGUAGE_FIX, LANGUAGE_PATTERN, build_persona
from avatar_batch.catalogue.schema import DefaultsModel, EntryModel, PersonaModel, TopModel, salvage, validate_section
from avatar_batch.catalogue.yaml_lines import ParsedYaml, YamlShapeError, parse_yaml
from avatar_batch.core.errors import CatalogueError, InputFileError, Problem
from avatar_batch.core.records import PRESETS, Catalogue, CatalogueDefaults, Entry, Persona
from avatar_batch.core.settings import RENDERERS

SUPPORTED_VERSION = 1


def load_catalogue(path: Path, installed_voices: Collection[str] | None = None) -> Catalogue:
    """Validate the catalogue at `path`. `installed_voices`, when given, are the
    TTS voice ids available on this machine; every persona voice must be one."""
    path = Path(path)
    parsed = _parse(path)
    data = parsed.data
    locator = Locator(str(path), parsed.lines, data)
    if not isinstance(data, dict):
        fix = "start the file with 'version: 1', 'library:', 'personas:' and 'entries:'"
        message = "the file is empty" if data is None else "the top level must be a mapping of keys"
        raise CatalogueError([locator.problem((), message, value=data, fix=fix)])
    ctx = PathContext(base=path.resolve().parent, root=find_catalogue_root(path), locator=locator)
    problems = [_duplicate_key_problem(dup, locator) for dup in parsed.duplicates]
    top, found = validate_section(TopModel, data, (), locator)
    problems += found
    problems += _version_problems(top.version if top else data.get("version"), locator)
    library_dir, found = _library_dir(top.library if top else data.get("library"), ctx)
    problems += found
    persona_ids = frozenset(data["personas"]) if isinstance(data.get("personas"), dict) else frozenset()
    defaults, found = _defaults(data.get("defaults", {}), persona_ids, locator)
    problems += found
    personas, voices, found = _personas(data.get("personas"), ctx, installed_voices)
    problems += found
    entries, found = _entries(data.get("entries"), EntryContext(ctx, defaults, persona_ids, voices))
    problems += found
    problems += _unused_persona_warnings(persona_ids, data.get("entries"), defaults, locator)
    problems = sorted(dict.fromkeys(problems), key=lambda p: p.line or 0)
    if top is None or library_dir is None or any(p.severity == "error" for p in problems):
        raise CatalogueError(problems)
    return Catalogue(
        path=path.resolve(),
        version=top.version,
        library_dir=library_dir,
        defaults=_defaults_record(defaults),
        personas=personas,
        entries=tuple(entries),
        warnings=tuple(p.render() for p in problems),
    )


def _parse(path: Path) -> ParsedYaml:
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise InputFileError(f"catalogue {path} does not exist") from exc
    except OSError as exc:
        raise InputFileError(f"catalogue {path} cannot be read: {exc.strerror}") from exc
    file = str(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CatalogueError([Problem(file, f"file is not UTF-8 text ({exc.reason})", fix="save it as UTF-8")]) from exc
    try:
        return parse_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        message = f"YAML syntax error: {exc.problem or exc.context}"
        if exc.context and exc.problem:
            message += f" ({exc.context})"
        fix = "check indentation, colons and quotes on that line; quote texts that contain ': ' or start with a symbol"
        raise CatalogueError([Problem(file, message, line=line, fix=fix)]) from exc
    except (yaml.YAMLError, YamlShapeError) as exc:
        raise CatalogueError([Problem(file, f"cannot read the YAML: {exc}", fix="simplify the document")]) from exc


def _duplicate_key_problem(dup: Any, locator: Locator) -> Problem:
    message = f"key '{dup.path[-1]}' is written twice: lines {dup.first_line} and {dup.second_line}"
    return locator.problem(dup.path, message, fix="keep one of them", line=dup.second_line)


def _version_problems(version: Any, locator: Locator) -> list[Problem]:
    if not isinstance(version, int) or isinstance(version, bool) or version == SUPPORTED_VERSION:
        return []  # a missing or non-integer version is reported by the schema
    message = f"unsupported catalogue version {version}"
    fix = f"this avatar-batch reads version {SUPPORTED_VERSION}; write 'version: {SUPPORTED_VERSION}'"
    return [locator.problem(("version",), message, value=version, fix=fix)]


def _library_dir(written: Any, ctx: PathContext) -> tuple[Path | None, list[Problem]]:
    if not isinstance(written, str):
        return None, []  # missing or wrong type: reported by the schema
    found = resolve_inside(written, ctx.base, ctx.root)
    if isinstance(found, PathRefused):
        message = f"library folder: {found.message}"
        return None, [ctx.locator.problem(("library",), message, value=written, fix=found.fix)]
    if found.exists() and not found.is_dir():
        message, fix = f"library {found} is a file, not a folder", "name a folder (it is created if missing)"
        return None, [ctx.locator.problem(("library",), message, value=written, fix=fix)]
    return found, []


def _defaults(raw: Any, persona_ids: frozenset[str], locator: Locator) -> tuple[DefaultsModel, list[Problem]]:
    """Checked defaults. Broken keys are reported and replaced by the built-in
    defaults, so the entries are still checked against the rest."""
    if not isinstance(raw, dict):
        return DefaultsModel(), []  # reported by the top-level schema
    model, problems = validate_section(DefaultsModel, raw, ("defaults",), locator)
    model = model or salvage(DefaultsModel, raw) or DefaultsModel()
    at = locator.problem
    if model.preset not in PRESETS:
        fix = suggest(model.preset, PRESETS, "preset")
        problems.append(at(("defaults", "preset"), f"unknown preset '{model.preset}'", fix=fix))
    if model.renderer not in RENDERERS:
        fix = suggest(model.renderer, RENDERERS, "renderer")
        problems.append(at(("defaults", "renderer"), f"unknown renderer '{model.renderer}'", fix=fix))
    if model.persona is not None and model.persona not in persona_ids:
        fix = suggest(model.persona, persona_ids, "persona")
        problems.append(at(("defaults", "persona"), f"unknown persona '{model.persona}'", fix=fix))
    for index, language in enumerate(model.languages):
        if not LANGUAGE_PATTERN.match(language):
            where = ("defaults", "languages", index)
            problems.append(at(where, "not a language code", value=language, fix=LANGUAGE_FIX))
    return model, problems


def _personas(
    raw: Any, ctx: PathContext, installed_voices: Collection[str] | None
) -> tuple[dict[str, Persona], dict[str, dict[str, object]], list[Problem]]:
    """The personas that passed every check, and the voices of every persona
    whose structure is sound (entries are checked against those)."""
    personas: dict[str, Persona] = {}
    voices: dict[str, dict[str, object]] = {}
    problems: list[Problem] = []
    if not isinstance(raw, dict):
        return personas, voices, problems  # reported by the top-level schema
    if not raw:
        fix = "define at least one persona"
        problems.append(ctx.locator.problem(("personas",), "no personas are defined", fix=fix))
    for persona_id, section in raw.items():
        model, found = validate_section(PersonaModel, section, ("personas", persona_id), ctx.locator)
        problems += found
        if model is None or not isinstance(persona_id, str):
            continue
        voices[persona_id] = dict(model.voices)
        persona, found = build_persona(persona_id, model, ctx, installed_voices)
        problems += found
        if persona is not None:
            personas[persona_id] = persona
    return personas, voices, problems


def _entries(raw: Any, entry_ctx: EntryContext) -> tuple[list[Entry], list[Problem]]:
    entries: list[Entry] = []
    problems: list[Problem] = []
    ctx = entry_ctx.paths
    if not isinstance(raw, list):
        return entries, problems  # reported by the top-level schema
    if not raw:
        problems.append(ctx.locator.problem(("entries",), "the catalogue has no entries", fix="add at least one entry"))
    ids: list[tuple[int, str]] = []
    for index, section in enumerate(raw):
        if isinstance(section, dict) and isinstance(section.get("id"), str):
            ids.append((index, section["id"]))  # even from an entry that is broken otherwise
        model, found = validate_section(EntryModel, section, ("entries", index), ctx.locator)
        problems += found
        if model is None:
            continue
        entry, found = build_entry(index, model, entry_ctx)
        problems += found
        if entry is not None:
            entries.append(entry)
    problems += duplicate_id_problems(ids, ctx)
    return entries, problems


def _unused_persona_warnings(
    persona_ids: frozenset[str], raw_entries: Any, defaults: DefaultsModel, locator: Locator
) -> list[Problem]:
    if not isinstance(raw_entries, list):
        return []
    named = {entry.get("persona") for entry in raw_entries if isinstance(entry, dict)}
    if any(name is None for name in named):
        named.add(defaults.persona)
    fix = "remove it, or name it in an entry's 'persona'"
    return [
        locator.problem(("personas", pid), f"persona '{pid}' is not used by any entry", fix=fix, severity="warning")
        for pid in sorted(persona_ids - named)
    ]


def _defaults_record(model: DefaultsModel) -> CatalogueDefaults:
    return CatalogueDefaults(
        preset=model.preset,
        renderer=model.renderer,
        languages=tuple(model.languages),
        persona=model.persona,
        loudness_lufs=model.loudness_lufs,
        seed=model.seed,
    )
