"""A small catalogue built directly from core records (no YAML), with real
image and recording files so their bytes feed the job ids."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from avatar_batch.core.records import Catalogue, CatalogueDefaults, Entry, Persona


def render_prompt(persona: Persona, entry: Entry, language: str) -> str:
    return persona.prompt_template.replace("{department}", entry.department)


def make_entry(entry_id: str, **changes) -> Entry:
    entry = Entry(
        id=entry_id,
        persona="ana",
        department="Front desk",
        question={"en": f"Question {entry_id}?", "zh": f"问题 {entry_id}？"},
        answer={"en": f"Answer to {entry_id}.", "zh": f"{entry_id} 的回答。"},
        languages=("en", "zh"),
    )
    return replace(entry, **changes)


def make_catalogue(root: Path, entries: tuple[Entry, ...] | None = None) -> Catalogue:
    (root / "assets").mkdir(parents=True, exist_ok=True)
    (root / "assets" / "ana.png").write_bytes(b"portrait of ana")
    (root / "assets" / "ben.png").write_bytes(b"portrait of ben")
    personas = {
        "ana": Persona(
            id="ana",
            image_path=Path("assets/ana.png"),
            prompt_path=Path("prompts/ana.txt"),
            prompt_template="A friendly clerk of {department} talks to the camera.",
            voices={"en": "en-us", "zh": "cmn"},
        ),
        "ben": Persona(
            id="ben",
            image_path=root / "assets" / "ben.png",
            prompt_path=Path("prompts/ben.txt"),
            prompt_template="A calm engineer talks.",
            voices={"en": "en-gb", "zh": "cmn"},
            rate_wpm=150,
        ),
    }
    return Catalogue(
        path=root / "faq.yaml",
        version=1,
        library_dir=root / "output",
        defaults=CatalogueDefaults(),
        personas=personas,
        entries=entries if entries is not None else (make_entry("hours"), make_entry("parking")),
    )
