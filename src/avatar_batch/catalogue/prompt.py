"""Persona prompt templates: which fields they may use, and filling them in.

A template is plain text with `{field}` placeholders; `{{` and `}}` stand for
literal braces. Only the fields in `PROMPT_FIELDS` exist, and only in their
plain form: attribute or index access (`{question.x}`, `{question[0]}`),
conversions and format specs are refused, so a template can never reach
anything but the four strings it is given. Templates are checked when the
catalogue loads (`template_problems`), so `render_prompt` cannot fail later.
"""

from __future__ import annotations

import string

from avatar_batch.core.records import Entry, Persona

PROMPT_FIELDS = ("department", "question", "language", "persona")

# The video model reads English prompts, so a language is named in English.
LANGUAGE_NAMES = {
    "en": "English",
    "zh": "Mandarin Chinese",
    "yue": "Cantonese",
    "es": "Spanish",
    "fr": "French",
    "de": "German",
    "ja": "Japanese",
    "ko": "Korean",
    "pt": "Portuguese",
    "ar": "Arabic",
    "hi": "Hindi",
    "ru": "Russian",
}


def language_name(code: str) -> str:
    """'en' -> 'English'; 'en-gb' -> 'English'; an unlisted code is returned as written."""
    return LANGUAGE_NAMES.get(code.lower(), LANGUAGE_NAMES.get(code.lower().split("-")[0], code))


def template_problems(template: str) -> list[str]:
    """Everything wrong with a template, as messages; empty when it is usable."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        return [f"template is not well formed ({exc}); write literal braces as '{{{{' and '}}}}'"]
    problems = []
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in PROMPT_FIELDS:
            problems.append(f"unknown field '{{{name}}}'")
        elif spec or conversion:
            problems.append(f"field '{{{name}}}' must be written plainly, without '!' or ':'")
    return problems


def render_prompt(persona: Persona, entry: Entry, language: str) -> str:
    """The persona's template filled for one entry in one language."""
    if language not in entry.question:
        raise ValueError(f"entry '{entry.id}' has no question in '{language}'; it has {', '.join(entry.question)}")
    values = {
        "department": entry.department,
        "question": entry.question[language],
        "language": language_name(language),
        "persona": persona.id,
    }
    return persona.prompt_template.format_map(values)
