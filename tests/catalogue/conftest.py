"""Builders for catalogues in a temporary project: a root marker, a 512x512
portrait, a prompt template, a recording, and the YAML itself."""

from __future__ import annotations

import copy
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from avatar_batch.catalogue import load_catalogue
from avatar_batch.core.errors import CatalogueError, Problem

PROMPT = "Identity: a doctor.\nScene: the {department} department.\nAction: answers {question} in {language}."

BASE: dict[str, Any] = {
    "version": 1,
    "library": "out/lib",
    "defaults": {"preset": "standard", "renderer": "still", "languages": ["en", "zh"], "persona": "doc"},
    "personas": {
        "doc": {"image": "doc.png", "prompt": "doc.txt", "voices": {"en": "en-us", "zh": "cmn"}},
    },
    "entries": [
        {
            "id": "chest-pain",
            "department": "cardiology",
            "question": {"en": "Where do I go?", "zh": "去哪里？"},
            "answer": {"en": "Call emergency services now.", "zh": "请立即拨打急救电话。"},
        },
        {
            "id": "fever",
            "department": "fever clinic",
            "question": {"en": "Fever?", "zh": "发烧？"},
            "answer": {"en": "Go to the fever clinic.", "zh": "请去发热门诊。"},
        },
    ],
}


def write_png(path: Path, size_px: tuple[int, int] = (512, 512)) -> Path:
    Image.new("RGB", size_px, (200, 180, 160)).save(path)
    return path


def write_wav(path: Path) -> Path:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16_000)
        handle.writeframes(b"\0\0" * 1600)
    return path


class Project:
    """A temporary project folder holding a catalogue and the files it names."""

    def __init__(self, root: Path):
        self.root = root
        (root / "avatar-batch.toml").write_text("")
        write_png(root / "doc.png")
        (root / "doc.txt").write_text(PROMPT, encoding="utf-8")
        write_wav(root / "doc-en.wav")

    def base(self) -> dict[str, Any]:
        return copy.deepcopy(BASE)

    def write(self, content: dict | str, name: str = "catalogue.yaml") -> Path:
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False, allow_unicode=True)
        path = self.root / name
        path.write_text(text, encoding="utf-8")
        return path

    def load(self, content: dict | str, **kwargs):
        return load_catalogue(self.write(content), **kwargs)

    def problems(self, content: dict | str, **kwargs) -> list[Problem]:
        """Load a catalogue that must fail; return its problems (errors and warnings)."""
        with pytest.raises(CatalogueError) as caught:
            self.load(content, **kwargs)
        assert caught.value.exit_code == 65
        return list(caught.value.problems)

    def error(self, content: dict | str, **kwargs) -> Problem:
        """Load a catalogue that must fail with exactly one error; return it."""
        problems = self.problems(content, **kwargs)
        errors = [p for p in problems if p.severity == "error"]
        assert len(errors) == 1, "\n".join(p.render() for p in problems)
        return errors[0]

    def edited(self, edit: Callable[[dict], None]) -> dict:
        data = self.base()
        edit(data)
        return data


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)
