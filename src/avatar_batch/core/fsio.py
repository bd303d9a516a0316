"""Atomic file writes: write to a temporary name in the same folder, fsync,
then rename into place, so a reader (or a run killed with SIGKILL) never sees a
half-written file. Temporary names start with `.tmp-` so `cleanup_temp` can
find leftovers of a killed run."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TEMP_PREFIX = ".tmp-"
HASH_CHUNK_BYTES = 16 * 1024 * 1024  # checkpoints are tens of GB: stream them


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def temp_sibling(path: Path) -> Path:
    return path.with_name(f"{TEMP_PREFIX}{uuid.uuid4().hex[:12]}-{path.name}")


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success rename it onto `path`.
    On any error the temporary file is removed and `path` is untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    try:
        yield tmp
        if tmp.is_file():
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        if tmp.exists() or tmp.is_symlink():
            remove_tree(tmp)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    write_text_atomic(path, text)


def remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def cleanup_temp(folder: Path) -> list[Path]:
    """Remove `.tmp-*` leftovers below `folder` (a killed run's partial files)."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for tmp in sorted(folder.rglob(f"{TEMP_PREFIX}*"), key=lambda p: len(p.parts), reverse=True):
        if tmp.exists() or tmp.is_symlink():
            remove_tree(tmp)
            removed.append(tmp)
    return removed
