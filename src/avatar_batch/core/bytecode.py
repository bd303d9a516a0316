"""Whether the heavy imports start from bytecode.

torch, transformers and diffusers are several thousand modules. Where their
`.pyc` files are missing (an image built with PYTHONDONTWRITEBYTECODE=1, a
site-packages that was never writable), every process compiles them from
source: 10.7 s of a first video on an H200 host, which `python -m compileall`
run once removes (README, "Warm start"). `doctor` reports it.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

HEAVY_PACKAGES = ("torch", "transformers", "diffusers")
MISSING_SHARE_TO_REPORT = 0.05  # a few modules without bytecode cost nothing worth a warning


@dataclass(frozen=True)
class BytecodeState:
    package: str
    folder: Path
    modules: int
    without_bytecode: int  # sources whose cached .pyc is absent or older than the source

    @property
    def slow(self) -> bool:
        return self.modules > 0 and self.without_bytecode / self.modules > MISSING_SHARE_TO_REPORT


def _has_bytecode(source: Path) -> bool:
    # cache_from_source honours sys.pycache_prefix (PYTHONPYCACHEPREFIX), as imports do.
    cached = Path(importlib.util.cache_from_source(str(source)))
    try:
        return cached.stat().st_mtime >= source.stat().st_mtime
    except OSError:
        return False


def bytecode_state(package: str, folder: Path) -> BytecodeState:
    """How many of the package's modules under `folder` would compile from source."""
    sources = [Path(root) / name for root, _, names in os.walk(folder) for name in names if name.endswith(".py")]
    missing = sum(not _has_bytecode(source) for source in sources)
    return BytecodeState(package, folder, len(sources), missing)


def installed_package_folder(package: str) -> Path | None:
    """The folder of an installed top-level package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def heavy_imports_state() -> list[BytecodeState]:
    """Bytecode state of each heavy package that is installed."""
    found = ((name, installed_package_folder(name)) for name in HEAVY_PACKAGES)
    return [bytecode_state(name, folder) for name, folder in found if folder is not None]
