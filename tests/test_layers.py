"""The import rules of docs/architecture.md, enforced."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "avatar_batch"
STAGES = ("catalogue", "plan", "speech", "render", "mux", "library")
HEAVY = ("torch", "diffusers", "transformers", "accelerate", "safetensors")


def imported_modules(path: Path, package: Path = PACKAGE) -> set[str]:
    """Every module `path` imports, absolute. `from avatar_batch import mux` counts
    as `avatar_batch.mux` (the name may be a module), and relative imports are
    resolved against the file's own package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = ("avatar_batch", *path.relative_to(package).parent.parts)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else ()
            module = ".".join((*base, *(node.module.split(".") if node.module else ())))
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def owner(path: Path, package: Path = PACKAGE) -> str:
    return path.relative_to(package).parts[0].removesuffix(".py")


def layer_violations(package: Path) -> list[str]:
    bad = []
    for path in sorted(package.rglob("*.py")):
        layer = owner(path, package)
        for module in sorted(imported_modules(path, package)):
            parts = module.split(".")
            if parts[0] != "avatar_batch" or len(parts) < 2:
                continue
            target = parts[1]
            if layer in STAGES and target not in ("core", layer):
                bad.append(f"{path.relative_to(package)} imports {module}")
            if layer == "core" and target != "core":
                bad.append(f"{path.relative_to(package)} imports {module}")
            # Executors run whatever work `batch` hands them; they wire no stage.
            if layer == "executors" and target not in ("core", "executors"):
                bad.append(f"{path.relative_to(package)} imports {module}")
            if layer == "batch" and target == "cli":
                bad.append(f"{path.relative_to(package)} imports {module}")
    return bad


def test_stages_import_only_core_and_themselves():
    bad = layer_violations(PACKAGE)
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize(
    "source",
    [
        "import avatar_batch.mux\n",
        "from avatar_batch.mux import encode\n",
        "from avatar_batch import mux\n",
        "from avatar_batch import mux as mux_stage\n",
        "from .. import mux\n",
        "from ..mux.argv import encode_argv\n",
    ],
)
def test_a_planted_stage_to_stage_import_is_caught(tmp_path, source):
    package = tmp_path / "avatar_batch"
    (package / "catalogue").mkdir(parents=True)
    (package / "catalogue" / "planted.py").write_text("from avatar_batch.core import errors\n" + source)
    assert layer_violations(package) == [f"catalogue/planted.py imports {m}" for m in _stage_modules(source)]


def _stage_modules(source: str) -> list[str]:
    if "argv" in source:
        return ["avatar_batch.mux.argv", "avatar_batch.mux.argv.encode_argv"]
    if "import encode" in source:
        return ["avatar_batch.mux", "avatar_batch.mux.encode"]
    return ["avatar_batch.mux"]


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
