"""Where a catalogue's paths may point.

Paths in a catalogue are relative to the catalogue file's folder. Each must
resolve (after following symlinks) inside the *catalogue root*: the nearest
ancestor folder of the catalogue file that holds a `pyproject.toml`, `.git` or
`avatar-batch.toml` marker, or else the catalogue's own folder. So
`questions/triage.yaml` in a project may name `../assets/dr_chen.png`, while
an absolute path, a `..` that climbs out of the project, or a symlink pointing
outside it is refused: a catalogue shared with others can then never make a
run read (or, for `library`, write) files elsewhere on the machine.

The catalogue root is not `Catalogue.root`, which is the catalogue's folder,
the base that relative paths start from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# The marker a project of our own uses (`avatar-batch init` writes one); a
# source checkout's pyproject.toml or .git serve as well.
PROJECT_MARKER = "avatar-batch.toml"
ROOT_MARKERS = ("pyproject.toml", ".git", PROJECT_MARKER)


def find_catalogue_root(catalogue_path: Path) -> Path:
    """Nearest ancestor of the (resolved) catalogue file holding a root marker,
    else the catalogue's folder."""
    folder = catalogue_path.resolve().parent
    for candidate in (folder, *folder.parents):
        if any((candidate / marker).exists() for marker in ROOT_MARKERS):
            return candidate
    return folder


@dataclass(frozen=True)
class PathRefused:
    """Why a written path cannot be used, and what to do instead."""

    message: str
    fix: str


def _inside_fix(base: Path, root: Path) -> str:
    fix = f"keep the file inside the catalogue root {root} and write its path relative to {base}"
    marker = next((m for m in ROOT_MARKERS if (root / m).exists()), None)
    if marker is not None:
        return f"{fix} (the root is the nearest folder above the catalogue holding {marker})"
    return (
        f"{fix}. No folder above the catalogue holds a root marker, so the root is the catalogue's own folder: "
        f"to use files beside it (e.g. ../assets), create an empty {PROJECT_MARKER} in the folder that holds the "
        "catalogue's folder and those files, or start a new project with `avatar-batch init DIR`"
    )


def resolve_inside(written: str, base: Path, root: Path) -> Path | PathRefused:
    """Resolve `written` against `base`; refuse it unless it stays inside `root`.

    `base` and `root` must already be resolved.
    """
    if not written.strip():
        return PathRefused("path is empty", "write a path relative to the catalogue's folder")
    if "\0" in written:
        return PathRefused("path contains a NUL character", "write a plain relative path")
    inside_fix = _inside_fix(base, root)
    if Path(written).is_absolute() or written.startswith("~"):
        return PathRefused("absolute and home (~) paths are not allowed", inside_fix)
    lexical = Path(os.path.normpath(base / written))
    if not lexical.is_relative_to(root):
        return PathRefused("path climbs out of the catalogue root with '..'", inside_fix)
    try:
        resolved = (base / written).resolve()
    except RuntimeError:  # Python 3.11 raises it for a symlink loop (later versions: OSError)
        return PathRefused("path is a symlink loop", "replace the symlinks with the file itself")
    except OSError as exc:
        return PathRefused(f"path cannot be resolved: {exc.strerror}", "replace the symlinks with the file itself")
    if not resolved.is_relative_to(root):
        return PathRefused(f"path is a symlink that leads outside the catalogue root, to {resolved}", inside_fix)
    return resolved
