"""manifest.json: read, validate, write. The library's source of truth.

    {"schema_version": 1, "generated_at": "<UTC ISO time>",
     "items": [LibraryItem.to_dict(), ...]}   sorted by (entry_id, language, job_id)

Written only through `core.fsio.write_json_atomic`, so a reader sees the old
manifest or the new one, never half of one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from avatar_batch.core.fsio import write_json_atomic
from avatar_batch.core.records import ITEM_STATUSES, LibraryItem
from avatar_batch.library.layout import LibraryError

MANIFEST_SCHEMA_VERSION = 1
REBUILD_HINT = (
    "Run `avatar-batch library rebuild`: it rebuilds manifest.json from the meta.json "
    "file in each videos/<entry>/<lang>/<job-id>/ folder and keeps the damaged file "
    "as manifest.json.corrupt-<time>"
)


class ManifestDamagedError(LibraryError):
    """manifest.json cannot be read; `Library.rebuild` can reconstruct it."""


def sort_key(item: LibraryItem) -> tuple[str, str, str]:
    return (item.entry_id, item.language, item.job_id)


def manifest_document(items: Iterable[LibraryItem], generated_at: str) -> dict[str, Any]:
    return {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "generated_at": generated_at,
        "items": [item.to_dict() for item in sorted(items, key=sort_key)],
    }


def write_manifest(path: Path, items: Iterable[LibraryItem], generated_at: str) -> None:
    write_json_atomic(path, manifest_document(items, generated_at))


def read_manifest(path: Path) -> dict[str, LibraryItem]:
    """job_id -> item. A missing manifest is an empty library; anything
    unreadable raises LibraryError saying how to recover."""
    if not path.exists():
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _corrupt(path, f"not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("items"), list):
        raise _corrupt(path, "expected an object with an 'items' list")
    version = document.get("schema_version")
    if version != MANIFEST_SCHEMA_VERSION:
        raise LibraryError(
            f"{path}: schema_version {version!r} is not {MANIFEST_SCHEMA_VERSION}; "
            "it was written by another version of avatar-batch. Use that version, "
            "or point this run at a new library folder"
        )
    return items_from_rows(path, document["items"])


def items_from_rows(path: Path, rows: list[Any]) -> dict[str, LibraryItem]:
    items: dict[str, LibraryItem] = {}
    for index, row in enumerate(rows):
        item = item_from_row(row)
        if item is None:
            raise _corrupt(path, f"items[{index}] is not a valid library row")
        if item.job_id in items:
            raise _corrupt(path, f"items[{index}] repeats job_id {item.job_id!r}")
        items[item.job_id] = item
    return items


def item_from_row(row: Any) -> LibraryItem | None:
    """A LibraryItem, or None when `row` is not one (wrong shape or status)."""
    if not isinstance(row, Mapping):
        return None
    try:
        item = LibraryItem.from_dict(row)
    except TypeError:
        return None
    fields_ok = all(isinstance(getattr(item, name), str) for name in ("job_id", "entry_id", "language"))
    return item if fields_ok and item.status in ITEM_STATUSES else None


def _corrupt(path: Path, reason: str) -> ManifestDamagedError:
    return ManifestDamagedError(f"{path} is damaged ({reason}). {REBUILD_HINT}")
