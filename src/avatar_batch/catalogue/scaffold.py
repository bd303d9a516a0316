"""A new project folder from the scaffold this package carries (`avatar-batch init`).

The scaffold (`avatar_batch/scaffold/`, package data) is what a hospital needs
to start its own library outside this repository: the `avatar-batch.toml`
root marker, an example catalogue, two personas' portraits and prompts, and a
short README. Nothing is ever overwritten: if any of those files exists, no
file is written and the error lists them. Knows nothing about what the
catalogue means; `load_catalogue` checks the result like any other.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath

from avatar_batch.catalogue.paths import PROJECT_MARKER
from avatar_batch.core.errors import UsageError, WouldOverwriteError

EXAMPLE_CATALOGUE = PurePosixPath("questions/faq.yaml")


def scaffold_files() -> dict[PurePosixPath, Traversable]:
    """Every scaffold file by its path inside a new project, sorted."""
    found: dict[PurePosixPath, Traversable] = {}
    pending: list[tuple[PurePosixPath, Traversable]] = [(PurePosixPath(), files("avatar_batch") / "scaffold")]
    while pending:
        rel, node = pending.pop()
        for child in node.iterdir():
            if child.name.startswith((".", "__")):
                continue  # caches and editor files are not part of a project
            if child.is_dir():
                pending.append((rel / child.name, child))
            else:
                found[rel / child.name] = child
    if PurePosixPath(PROJECT_MARKER) not in found or EXAMPLE_CATALOGUE not in found:
        raise RuntimeError("the installed avatar_batch package lacks its scaffold files; reinstall it")
    return dict(sorted(found.items()))


def write_project(folder: Path) -> list[Path]:
    """Write the scaffold into `folder` (created if missing); the paths written.

    Raises WouldOverwriteError, before writing anything, if any file exists."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"cannot start a project in {folder}: it is a file, not a folder; name a new or empty folder")
    scaffold = scaffold_files()
    taken = [rel for rel in scaffold if (folder / rel).exists() or (folder / rel).is_symlink()]
    if taken:
        listed = ", ".join(str(rel) for rel in taken)
        raise WouldOverwriteError(
            f"{folder} already holds {listed}; nothing was written. Run `avatar-batch init` on a new or empty "
            "folder, or move those files away first"
        )
    written = []
    for rel, source in scaffold.items():
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "xb") as handle:  # "x": never replace a file that appeared meanwhile
            handle.write(source.read_bytes())
        written.append(target)
    return written
