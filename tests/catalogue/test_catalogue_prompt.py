"""Prompt templates: the fields they may use and how they are filled."""

from __future__ import annotations

from pathlib import Path

import pytest

from avatar_batch.catalogue import PROMPT_FIELDS, language_name, render_prompt
from avatar_batch.catalogue.prompt import template_problems
from avatar_batch.core.records import Entry, Persona


def make(template: str) -> tuple[Persona, Entry]:
    persona = Persona("dr_chen", Path("p.png"), Path("p.txt"), template, {"en": "en-us", "zh": "cmn"})
    entry = Entry(
        id="chest-pain",
        persona="dr_chen",
        department="cardiology",
        question={"en": "Where do I go?", "zh": "去哪里？"},
        answer={"en": "Call now.", "zh": "请立即拨打。"},
        languages=("en", "zh"),
    )
    return persona, entry


def test_all_fields_are_filled():
    persona, entry = make("{persona} in {department}: {question} ({language}) {{literal}}")
    assert render_prompt(persona, entry, "en") == "dr_chen in cardiology: Where do I go? (English) {literal}"
    assert render_prompt(persona, entry, "zh") == "dr_chen in cardiology: 去哪里？ (Mandarin Chinese) {literal}"


def test_language_names():
    assert language_name("en") == "English"
    assert language_name("en-gb") == "English"
    assert language_name("xx") == "xx"


def test_unknown_language_is_a_clear_error():
    persona, entry = make("{question}")
    with pytest.raises(ValueError, match="no question in 'fr'"):
        render_prompt(persona, entry, "fr")


def test_text_with_braces_is_inserted_literally():
    persona, entry = make("Q: {question}")
    entry = Entry(**{**entry.__dict__, "question": {"en": "What is {persona}?", "zh": "x"}})
    assert render_prompt(persona, entry, "en") == "Q: What is {persona}?"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Scene: {department}", []),
        ("{{not a field}}", []),
        ("{weather}", ["unknown field '{weather}'"]),
        ("{question.__class__}", ["unknown field '{question.__class__}'"]),
        ("{question[0]}", ["unknown field '{question[0]}'"]),
        ("{}", ["unknown field '{}'"]),
        ("{question!r}", ["field '{question}' must be written plainly, without '!' or ':'"]),
        ("{language:>10}", ["field '{language}' must be written plainly, without '!' or ':'"]),
    ],
)
def test_template_problems(template, expected):
    assert template_problems(template) == expected


@pytest.mark.parametrize("template", ["a } b", "a { b"])
def test_unbalanced_braces(template):
    (message,) = template_problems(template)
    assert "not well formed" in message


def test_fields_are_the_documented_four():
    assert PROMPT_FIELDS == ("department", "question", "language", "persona")
