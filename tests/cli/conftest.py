"""A throw-away project (catalogue + assets + prompts) per test, so renders
write into tmp_path and tests can edit the catalogue freely."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


class Project:
    def __init__(self, root: Path):
        self.root = root
        self.catalogue = root / "questions" / "smoke.yaml"
        self.library = root / "output" / "smoke"

    def data(self) -> dict:
        return yaml.safe_load(self.catalogue.read_text(encoding="utf-8"))

    def write(self, data: dict) -> None:
        self.catalogue.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")

    def manifest_items(self) -> list[dict]:
        import json

        path = self.library / "manifest.json"
        return json.loads(path.read_text(encoding="utf-8"))["items"] if path.exists() else []


@pytest.fixture
def project(tmp_path: Path) -> Project:
    root = tmp_path / "project"
    (root / "questions").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    shutil.copytree(REPO / "assets", root / "assets")
    shutil.copytree(REPO / "prompts", root / "prompts")
    shutil.copy(REPO / "questions" / "smoke.yaml", root / "questions" / "smoke.yaml")
    return Project(root)
