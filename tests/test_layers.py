"""The import rules of docs/architecture.md, enforced."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "avatar_batch"
STAGES = ("catalogue", "plan", "speech", "render", "mux", "library")
HEAVY = ("torch", "diffusers", "transformers", "accelerate", "safetensors")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def owner(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def test_stages_import_only_core_and_themselves():
    bad = []
    for path in PACKAGE.rglob("*.py"):
        layer = owner(path)
        for module in imported_modules(path):
            parts = module.split(".")
            if parts[0] != "avatar_batch" or len(parts) < 2:
                continue
            target = parts[1]
            if layer in STAGES and target not in ("core", layer):
                bad.append(f"{path.relative_to(PACKAGE)} imports {module}")
            if layer == "core" and target != "core":
                bad.append(f"{path.relative_to(PACKAGE)} imports {module}")
            if layer == "batch" and target == "cli":
                bad.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert not bad, "\n".join(bad)


def test_only_render_imports_torch_and_friends():
    bad = []
    for path in PACKAGE.rglob("*.py"):
        if owner(path) == "render":
            continue
        for module in imported_modules(path):
            if module.split(".")[0] in HEAVY:
                bad.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert not bad, "\n".join(bad)


def test_cli_starts_without_torch():
    code = f"import sys, avatar_batch.cli; print(any(m in sys.modules for m in {HEAVY!r}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
