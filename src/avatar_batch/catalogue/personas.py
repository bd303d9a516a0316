"""Validate one persona section and turn it into a `Persona` record.

A persona is checked on its own: its id, its portrait and prompt files (via
`checks`), its language -> voice map and, when the caller knows which voices
are installed, that each espeak-ng voice exists (a command voice is checked
by `command_voices`, always). Entries that name the persona are
checked in `entries`.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from avatar_batch.catalogue.checks import PathContext, check_image, check_prompt
from avatar_batch.catalogue.command_voices import build_command_voice
from avatar_batch.catalogue.schema import PersonaModel
from avatar_batch.core.errors import Problem
from avatar_batch.core.records import CommandVoice, Persona

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
ID_FIX = "use lower-case letters, digits, '-' and '_', starting with a letter or digit"
LANGUAGE_PATTERN = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
LANGUAGE_FIX = "use a language code such as 'en', 'zh' or 'pt-br'"
# An espeak-ng voice id, optionally with a `+variant`; never starting with '-'
# so it cannot be read as an option of the program it is passed to.
VOICE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+/-]*$")


def voice_key(voice: str) -> str:
    """espeak-ng matches voice names case-insensitively and `+f3` only picks a
    variant of the voice, so 'en-GB-x-rp+f3' is installed when 'en-gb-x-rp' is."""
    return voice.split("+", 1)[0].lower()


def build_persona(
    persona_id: str,
    model: PersonaModel,
    ctx: PathContext,
    installed_voices: Collection[str] | None,
) -> tuple[Persona | None, list[Problem]]:
    loc = ("personas", persona_id)
    problems: list[Problem] = []
    if not ID_PATTERN.match(persona_id):
        message = "persona id is not usable in file names"
        problems.append(ctx.locator.problem(loc, message, value=persona_id, fix=ID_FIX))
    image_path, found = check_image(model.image, loc + ("image",), ctx)
    problems += found
    template, prompt_path, found = check_prompt(model.prompt, loc + ("prompt",), ctx)
    problems += found
    voices, found = _voices(model.voices, loc + ("voices",), ctx, installed_voices)
    problems += found
    if image_path is None or template is None or prompt_path is None or _has_errors(problems):
        return None, problems
    persona = Persona(
        id=persona_id,
        image_path=image_path,
        prompt_path=prompt_path,
        prompt_template=template,
        voices=voices,
        rate_wpm=model.rate_wpm,
    )
    return persona, problems


def _voices(
    written: dict[str, str | dict], loc: tuple, ctx: PathContext, installed_voices: Collection[str] | None
) -> tuple[dict[str, str | CommandVoice], list[Problem]]:
    installed = None if installed_voices is None else {voice_key(v) for v in installed_voices}
    voices: dict[str, str | CommandVoice] = {}
    problems = []
    for language, voice in written.items():
        where = loc + (language,)
        if not LANGUAGE_PATTERN.match(language):
            problems.append(ctx.locator.problem(where, "not a language code", value=language, fix=LANGUAGE_FIX))
        if isinstance(voice, dict):
            command, found = build_command_voice(voice, where, ctx)
            problems += found
            if command is not None:
                voices[language] = command
            continue
        voices[language] = voice
        if not VOICE_PATTERN.match(voice):
            fix = "use an espeak-ng voice id such as 'en-us' (see `espeak-ng --voices`)"
            problems.append(ctx.locator.problem(where, "not a voice id", value=voice, fix=fix))
        elif installed is not None and voice_key(voice) not in installed:
            fix = f"install espeak-ng voice {voice} / run `avatar-batch doctor`"
            problems.append(ctx.locator.problem(where, f"voice '{voice}' is not installed", value=voice, fix=fix))
    return voices, problems


def _has_errors(problems: list[Problem]) -> bool:
    return any(p.severity == "error" for p in problems)
