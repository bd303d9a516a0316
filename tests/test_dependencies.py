"""Every dependency pyproject.toml declares is used, so none is installed for nothing."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Distribution name -> the name it is imported by, where the two differ.
IMPORT_NAMES = {"pyyaml": "yaml", "pillow": "PIL", "ffmpeg-python": "ffmpeg"}
# Used by another dependency rather than imported by us, and why.
USED_THROUGH = {
    "sentencepiece": "transformers needs it to read umT5's spiece.model (the tokenizer of the official checkpoint)",
}
# Test extras that are programs `make test` runs, not modules the tests import.
RUN_BY_MAKE = {"ruff": "ruff check", "mypy": "mypy"}


def dist_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower()


def import_name(dist: str) -> str:
    return IMPORT_NAMES.get(dist, dist.replace("-", "_"))


def top_level_imports(folder: Path) -> set[str]:
    found: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_every_runtime_dependency_is_imported_by_the_package():
    declared = [*project()["dependencies"], *project()["optional-dependencies"]["runner"]]
    imported = top_level_imports(REPO / "src" / "avatar_batch")
    unused = [
        req for req in declared if dist_name(req) not in USED_THROUGH and import_name(dist_name(req)) not in imported
    ]
    assert not unused, f"declared in pyproject.toml but never imported under src/: {unused}; use them or remove them"


def test_every_test_dependency_is_imported_by_the_tests_or_run_by_make():
    imported = top_level_imports(REPO / "tests")
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    unused = []
    for req in project()["optional-dependencies"]["test"]:
        dist = dist_name(req)
        if dist in RUN_BY_MAKE:
            if RUN_BY_MAKE[dist] not in makefile:
                unused.append(req)
        elif import_name(dist) not in imported:
            unused.append(req)
    assert not unused, f"test extras neither imported by tests/ nor run by the Makefile: {unused}"


def test_the_exceptions_are_declared():
    declared = {dist_name(r) for group in project()["optional-dependencies"].values() for r in group}
    declared |= {dist_name(r) for r in project()["dependencies"]}
    assert set(USED_THROUGH) <= declared and set(RUN_BY_MAKE) <= declared
