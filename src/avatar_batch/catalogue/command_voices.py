"""Check a persona's command voice and turn it into a `CommandVoice` record.

A command voice is `{engine: command, argv: [program, arg, ...]}`: an argv
template run once per answer, never through a shell. Only `{text_file}` (the
answer text, UTF-8) and `{out_wav}` (where the program must write its WAV) are
substituted, inside any argument; both must appear. The program (argv[0]) is
looked up now, so a missing one is a catalogue error before any job starts:
a bare name is searched on PATH, a name with a '/' is a path (an absolute one,
or one relative to the catalogue's folder that stays inside the project, by
the rule in `paths`). Other arguments are passed as written; the program runs
in the catalogue's folder, so relative paths among them need no rewriting.
Those that name files inside the project are remembered, so their bytes can
enter the job id. Knows nothing of how the program is run.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from avatar_batch.catalogue.checks import PathContext
from avatar_batch.catalogue.locate import suggest
from avatar_batch.catalogue.paths import PathRefused, resolve_inside
from avatar_batch.catalogue.schema import CommandVoiceModel, validate_section
from avatar_batch.core.errors import Problem
from avatar_batch.core.records import OUT_WAV_PLACEHOLDER, TEXT_FILE_PLACEHOLDER, CommandVoice

ENGINE_COMMAND = "command"
PLACEHOLDERS = (TEXT_FILE_PLACEHOLDER, OUT_WAV_PLACEHOLDER)
_PLACEHOLDER_LIKE = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")
EXAMPLE = "argv: [piper, --model, voices/zh.onnx, --input_file, '{text_file}', --output_file, '{out_wav}']"


def build_command_voice(raw: dict[str, Any], loc: tuple, ctx: PathContext) -> tuple[CommandVoice | None, list[Problem]]:
    """`loc` is the voice's position, e.g. ("personas", "dr_chen", "voices", "zh")."""
    model, problems = validate_section(CommandVoiceModel, raw, loc, ctx.locator)
    if model is None:
        return None, problems
    where = f"persona '{loc[1]}', language '{loc[-1]}'"
    if model.engine != ENGINE_COMMAND:
        fix = (
            suggest(model.engine, [ENGINE_COMMAND], "engine") + " (or write an espeak-ng voice id instead of a mapping)"
        )
        problems.append(
            ctx.locator.problem(loc + ("engine",), f"{where}: unknown TTS engine", value=model.engine, fix=fix)
        )
    argv_loc = loc + ("argv",)
    if not model.argv or not model.argv[0].strip():
        message = f"{where}: argv is empty, so there is no program to run"
        return None, [*problems, ctx.locator.problem(argv_loc, message, fix=f"write {EXAMPLE}")]
    problems += _placeholder_problems(model.argv, argv_loc, where, ctx)
    executable, found = _executable(model.argv[0], argv_loc + (0,), where, ctx)
    problems += found
    if executable is None or any(p.severity == "error" for p in problems):
        return None, problems
    voice = CommandVoice(
        argv=tuple(model.argv),
        executable=executable,
        cwd=ctx.base,
        files=_project_files(model.argv[1:], ctx),
    )
    return voice, problems


def _placeholder_problems(argv: list[str], loc: tuple, where: str, ctx: PathContext) -> list[Problem]:
    problems = []
    written = " ".join(argv[1:])
    for placeholder, role in zip(PLACEHOLDERS, ("reads the answer text from", "writes its WAV to"), strict=True):
        if placeholder not in written:
            message = f"{where}: argv has no {placeholder} placeholder"
            fix = f"add the program's option that {role} a file, followed by '{placeholder}'; e.g. {EXAMPLE}"
            problems.append(ctx.locator.problem(loc, message, fix=fix))
    for index, argument in enumerate(argv):
        for token in _PLACEHOLDER_LIKE.findall(argument):
            if token not in PLACEHOLDERS:
                message = f"{where}: '{token}' is not a placeholder and is passed to the program as written"
                fix = f"only {' and '.join(PLACEHOLDERS)} are substituted; correct the spelling if one was meant"
                problems.append(
                    ctx.locator.problem(loc + (index,), message, value=argument, fix=fix, severity="warning")
                )
    return problems


def _executable(program: str, loc: tuple, where: str, ctx: PathContext) -> tuple[Path | None, list[Problem]]:
    """argv[0] as a file that can be executed, or the problem."""
    at = ctx.locator.problem
    if program.startswith("-"):
        return None, [at(loc, f"{where}: argv[0] must be the program, not an option", value=program, fix=EXAMPLE)]
    if "/" not in program:
        found = shutil.which(program)
        if found is None:
            fix = (
                f"install {program} (for Piper: `pip install piper-tts` or a release from "
                "github.com/rhasspy/piper), put its folder on PATH, or write its path"
            )
            return None, [at(loc, f"{where}: program '{program}' was not found on PATH", value=program, fix=fix)]
        return Path(found), []
    path = Path(program) if Path(program).is_absolute() else resolve_inside(program, ctx.base, ctx.root)
    if isinstance(path, PathRefused):
        return None, [at(loc, f"{where}: program path: {path.message}", value=program, fix=path.fix)]
    if not path.is_file() or not os.access(path, os.X_OK):
        fix = f"correct the path (relative to {ctx.base}), or `chmod +x` the file"
        return None, [at(loc, f"{where}: program {path} is not an executable file", value=program, fix=fix)]
    return path, []


def _project_files(arguments: list[str], ctx: PathContext) -> dict[str, Path]:
    """Arguments that name an existing file inside the project, resolved as the
    program will resolve them (relative to the catalogue's folder)."""
    files: dict[str, Path] = {}
    for argument in arguments:
        if any(p in argument for p in PLACEHOLDERS) or argument.startswith("-") or Path(argument).is_absolute():
            continue
        found = resolve_inside(argument, ctx.base, ctx.root)
        if not isinstance(found, PathRefused) and found.is_file():
            files[argument] = found
    return files
