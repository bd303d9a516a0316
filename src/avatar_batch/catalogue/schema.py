"""The catalogue's shape, as pydantic models, and pydantic errors as Problems.

The models check structure and types only: which keys exist and what type each
value has. Meaning (known presets, persona references, files on disk) is
checked in `rules` and `checks`, which can say more helpful things. Each
section (defaults, each persona, each entry) is validated on its own, so one
broken entry never hides the problems of the next.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator

from avatar_batch.catalogue.locate import Locator, suggest
from avatar_batch.core.errors import Problem
from avatar_batch.core.records import DEFAULT_TTS_RATE_WPM, CatalogueDefaults

_BUILT = CatalogueDefaults()  # the one home of every default value

# espeak-ng speaks between 80 and 450 words per minute (its `-s` range).
MIN_RATE_WPM, MAX_RATE_WPM = 80, 450
# ffmpeg's loudnorm accepts an integrated loudness target in -70..-5 LUFS.
MIN_LOUDNESS_LUFS, MAX_LOUDNESS_LUFS = -70.0, -5.0

Texts = str | dict[str, str]  # one text (the default language) or language -> text


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TopModel(_Section):
    """The top level. Sections stay raw here; each is validated by its own model."""

    version: int
    library: str
    defaults: dict[str, Any] = Field(default_factory=dict)
    personas: dict[str, Any]
    entries: list[Any]


class DefaultsModel(_Section):
    preset: str = _BUILT.preset
    renderer: str = _BUILT.renderer
    languages: list[str] = Field(default_factory=lambda: list(_BUILT.languages), min_length=1)
    persona: str | None = _BUILT.persona
    loudness_lufs: float = Field(_BUILT.loudness_lufs, ge=MIN_LOUDNESS_LUFS, le=MAX_LOUDNESS_LUFS)
    seed: int = _BUILT.seed


class PersonaModel(_Section):
    image: str
    prompt: str
    # an espeak-ng voice id, or a mapping checked by CommandVoiceModel in `command_voices`
    voices: dict[str, str | dict[str, Any]] = Field(min_length=1)
    rate_wpm: int = Field(DEFAULT_TTS_RATE_WPM, ge=MIN_RATE_WPM, le=MAX_RATE_WPM)

    @field_validator("voices", mode="before")
    @classmethod
    def _voice_id_or_mapping(cls, value: Any) -> Any:
        # Checked by hand so a wrong shape gives one clear message instead of
        # one error per member of the union.
        if not isinstance(value, dict):
            return value  # pydantic's own "must be a mapping" message
        for language, voice in value.items():
            if not isinstance(voice, str | dict):
                raise ValueError(
                    f"voice for '{language}' must be an espeak-ng voice id such as 'en-us', "
                    "or a mapping such as {engine: command, argv: [...]}"
                )
        return value


class CommandVoiceModel(_Section):
    """`{engine: command, argv: [program, arg, ...]}`: meaning is checked in `command_voices`."""

    engine: str
    argv: list[str]


class EntryModel(_Section):
    id: str
    persona: str | None = None
    department: str
    question: Texts
    answer: Texts
    audio: dict[str, str] = Field(default_factory=dict)
    preset: str | None = None
    size: str | None = None
    sink_refresh: StrictBool | None = None
    fallback_to_still: bool = True

    @field_validator("question", "answer", mode="before")
    @classmethod
    def _text_or_mapping(cls, value: Any) -> Any:
        # Checked by hand so a wrong shape gives one clear message instead of
        # one error per member of the union.
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            return value
        raise ValueError("must be a text, or a mapping of language code to text such as {en: '...', zh: '...'}")


Model = TypeVar("Model", bound=BaseModel)


def validate_section(model: type[Model], raw: Any, loc: tuple, locator: Locator) -> tuple[Model | None, list[Problem]]:
    """Validate one section; on failure return None and one Problem per pydantic error."""
    try:
        return model.model_validate(raw), []
    except ValidationError as exc:
        known = list(model.model_fields)
        return None, [_to_problem(error, loc, known, raw, locator) for error in exc.errors(include_url=False)]


def salvage(model: type[Model], raw: dict) -> Model | None:
    """The section with its broken keys left out (they are reported by
    `validate_section`), so checks that follow still see the good ones."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        broken = {error["loc"][0] for error in exc.errors() if error["loc"]}
    try:
        return model.model_validate({key: value for key, value in raw.items() if key not in broken})
    except ValidationError:
        return None


def _to_problem(error: Mapping[str, Any], loc: tuple, known: list[str], raw: Any, locator: Locator) -> Problem:
    where = loc + tuple(part for part in error["loc"] if part != "[key]")
    kind = error["type"]
    if kind == "extra_forbidden":
        return locator.problem(where, f"unknown key '{where[-1]}'", fix=suggest(where[-1], known))
    if kind == "missing":
        return locator.problem(where, f"required key '{where[-1]}' is missing", fix=f"add '{where[-1]}: …'")
    if kind in ("model_type", "dict_type") and not error["loc"]:
        what = "a mapping of keys to values"
        return locator.problem(where, f"must be {what}", value=raw, fix="write it as `key: value` lines")
    message = error["msg"].removeprefix("Value error, ")
    return locator.problem(where, message[:1].lower() + message[1:], value=error.get("input"))
