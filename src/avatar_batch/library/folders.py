"""Job folders on disk: assemble one in staging, move it into place, find and
remove folders, read and write their meta.json sidecars.

The order of operations is what keeps a library consistent when a run is
killed: a job's files are complete in their final folder before any manifest
row names them, and an old folder is deleted only after the manifest stops
naming it. This module does the file half; `store.Library` does the rows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path, PurePosixPath

from avatar_batch.core.errors import JobError
from avatar_batch.core.fsio import fsync_dir, remove_tree, write_json_atomic
from avatar_batch.core.records import LibraryItem
from avatar_batch.library.layout import (
    FILE_NAMES,
    FILE_SIZES_KEY,
    META_NAME,
    VIDEOS_DIR,
    is_temp_name,
)
from avatar_batch.library.manifest import item_from_row

BUILD_DIR_NAME = "commit"  # inside a job's staging folder


def assemble(staged: Path, item: LibraryItem, files: Mapping[str, str], rel: PurePosixPath) -> tuple[Path, LibraryItem]:
    """1. Move the named files of `staged` into `staged/commit/` under their
    library names; 2. fill the item's relative paths and file sizes; 3. write
    meta.json. Returns the built folder and the filled item."""
    unknown = sorted(set(files) - set(FILE_NAMES))
    if unknown or "video" not in files:
        raise JobError(
            f"job {item.job_id}: commit needs a 'video' file and accepts only "
            f"{', '.join(FILE_NAMES)}; got {', '.join(sorted(files))}"
        )
    built = staged / BUILD_DIR_NAME
    built.mkdir()
    sizes: dict[str, int] = {}
    paths: dict[str, str] = {}
    for key, name in files.items():
        source = staged / name
        if not source.is_file() or source.stat().st_size == 0:
            raise JobError(f"job {item.job_id}: staged {key} file {source} is missing or empty")
        final = built / FILE_NAMES[key]
        os.replace(source, final)
        _fsync_file(final)
        sizes[key] = final.stat().st_size
        paths[key] = str(rel / FILE_NAMES[key])
    telemetry = {**item.telemetry, FILE_SIZES_KEY: sizes}
    filled = replace(item, **paths, telemetry=telemetry)  # type: ignore[arg-type]  # paths: the str fields named in FILE_NAMES
    write_meta(built, filled)
    fsync_dir(built)
    return built, filled


def place(built: Path, target: Path) -> None:
    """Move a built folder to its final place.

    A new folder arrives by one directory rename. When the folder already
    exists (a forced re-render of the same job id, or the orphan of a killed
    commit) a directory cannot be renamed over it, so each file is replaced
    on its own: every name a manifest row may hold exists at every moment.
    meta.json goes last so it never describes files not yet in place.
    """
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(built, target)
        fsync_dir(target.parent)
        return
    names = sorted(p.name for p in built.iterdir() if p.name != META_NAME) + [META_NAME]
    for name in names:
        os.replace(built / name, target / name)
    fsync_dir(target)
    remove_tree(built)


def remove_stale_files(target: Path, item: LibraryItem) -> None:
    """After a re-commit into an existing folder, drop files the new version lacks."""
    wanted = {META_NAME} | {FILE_NAMES[key] for key in FILE_NAMES if getattr(item, key)}
    for path in target.iterdir():
        if path.name not in wanted:
            remove_tree(path)


def write_meta(folder: Path, item: LibraryItem) -> None:
    write_json_atomic(folder / META_NAME, item.to_dict())


def read_meta(folder: Path) -> LibraryItem | None:
    """The item a job folder's sidecar describes, or None when it is missing or unreadable."""
    try:
        row = json.loads((folder / META_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return item_from_row(row)


def job_folders(root: Path) -> list[Path]:
    """Every videos/<entry>/<lang>/<job-id>/ folder, temporary names excluded."""
    videos = root / VIDEOS_DIR
    if not videos.is_dir():
        return []
    return sorted(
        path
        for path in videos.glob("*/*/*")
        if path.is_dir() and not any(is_temp_name(part) for part in path.relative_to(videos).parts)
    )


def remove_job_folder(root: Path, folder: Path) -> None:
    """Delete a job folder, then its entry/lang parents if that left them empty."""
    remove_tree(folder)
    videos = root / VIDEOS_DIR
    parent = folder.parent
    while parent != videos and videos in parent.parents:
        try:
            parent.rmdir()
        except OSError:  # not empty: another version or language lives there
            break
        parent = parent.parent


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
