"""`Library`: the finished-video store a run commits into.

manifest.json is the source of truth; library.sqlite and index.html are
derived from it after every change. Every change follows the same order, so
that a run killed at any point leaves a library whose rows all point to
complete files:

    1. files are complete in their final folder    (an orphan folder is harmless)
    2. the manifest row flips, in one atomic write  (old or new, never half)
    3. superseded folders are deleted               (no row names them any more)
    4. sqlite and HTML are rebuilt                  (derived; `rebuild` redoes them)

Writers hold `lock()`; readers need no lock. Knows nothing of how the videos
were made.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from avatar_batch.core.clock import file_stamp, iso_utc, utc_now
from avatar_batch.core.errors import Problem
from avatar_batch.core.fsio import TEMP_PREFIX, remove_tree, write_json_atomic, write_text_atomic
from avatar_batch.core.records import LibraryItem
from avatar_batch.library import folders
from avatar_batch.library.html_page import render_page
from avatar_batch.library.layout import (
    HTML_NAME,
    MANIFEST_NAME,
    PLAYABLE_STATUSES,
    RUNS_DIR,
    SQLITE_NAME,
    LibraryError,
    check_component,
    job_folder_rel,
    under,
)
from avatar_batch.library.lock import hold_lock
from avatar_batch.library.manifest import ManifestDamagedError, read_manifest, write_manifest
from avatar_batch.library.sqlite_index import build_index
from avatar_batch.library.verify import item_files_ok, verify_items

Clock = Callable[[], datetime]


def _key(item: LibraryItem) -> tuple[str, str]:
    return (item.entry_id, item.language)


class Library:
    """A library folder. Methods that change it must run inside `lock()`."""

    def __init__(self, root: Path, clock: Clock = utc_now) -> None:
        self.root = Path(root)
        self._clock = clock

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME

    @property
    def sqlite_path(self) -> Path:
        return self.root / SQLITE_NAME

    @property
    def html_path(self) -> Path:
        return self.root / HTML_NAME

    # --- reading -----------------------------------------------------------------

    def lock(self) -> AbstractContextManager[Path]:
        """Exclusive run lock; raises LockedError at once if another run holds it."""
        return hold_lock(self.root)

    def items(self) -> dict[str, LibraryItem]:
        """job_id -> row, from manifest.json (missing manifest: empty library)."""
        return read_manifest(self.manifest_path)

    def folder_of(self, item: LibraryItem) -> Path:
        return under(self.root, job_folder_rel(item.entry_id, item.language, item.job_id))

    def verify_item(self, item: LibraryItem) -> bool:
        """Fast check for the planner: files exist with their committed sizes."""
        return item_files_ok(self.root, item)

    def verify(self) -> list[Problem]:
        """Thorough check of every playable row, ffprobe included."""
        return verify_items(self.root, self.items().values())

    # --- writing -----------------------------------------------------------------

    def staging_dir(self, job_id: str) -> Path:
        """A fresh `.tmp-<job_id>-<random>/` inside the library: on the same
        filesystem, so commit moves files by rename. Call it inside `lock()`:
        entering the lock removes every `.tmp-*` folder (a dead run's)."""
        check_component(job_id, "job id")
        self.root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{job_id}-", dir=self.root))

    def commit(self, item: LibraryItem, staged: Path, files: Mapping[str, str]) -> LibraryItem:
        """Move a job's staged files into the library and make its row current.

        `files` maps "video" (required), "poster", "captions_vtt",
        "captions_srt" to file names inside `staged`. Rows of the same
        (entry, language) are superseded only once the new row is written.
        """
        if item.status not in PLAYABLE_STATUSES:
            raise ValueError(f"commit takes a completed or fallback item, not {item.status!r}")
        items = self.items()  # fail on a damaged manifest before moving anything
        rel = job_folder_rel(item.entry_id, item.language, item.job_id)
        # A fallback row keeps why the model render failed; a completed row has no failure.
        failure = item.failure if item.status == "fallback" else None
        item = replace(item, failure=failure, created_at=item.created_at or iso_utc(self._clock()))
        built, item = folders.assemble(staged, item, files, rel)
        target = under(self.root, rel)
        folders.place(built, target)  # step 1
        superseded = [old for old in items.values() if _key(old) == _key(item) and old.job_id != item.job_id]
        for old in superseded:
            del items[old.job_id]
        items[item.job_id] = item
        self._write_manifest(items)  # step 2
        folders.remove_stale_files(target, item)
        self._remove_unreferenced(target.parent, items)  # step 3: superseded and orphans
        remove_tree(staged)
        self._refresh(items)  # step 4
        return item

    def record(self, item: LibraryItem) -> bool:
        """Store a failed job's row (no files). Returns False, storing nothing,
        when the same (entry, language) already has a completed or fallback
        row: a failed re-render must never hide the last good video, so that
        failure lives only in the run report."""
        if item.status != "failed":
            raise ValueError(f"record takes a failed item, not {item.status!r}; use commit for videos")
        items = self.items()
        same_key = [old for old in items.values() if _key(old) == _key(item)]
        if any(old.status in PLAYABLE_STATUSES for old in same_key):
            return False
        for old in same_key:
            if old.status == "failed":
                del items[old.job_id]
        items[item.job_id] = replace(
            item,
            video=None,
            poster=None,
            captions_vtt=None,
            captions_srt=None,
            created_at=item.created_at or iso_utc(self._clock()),
        )
        self._write_manifest(items)
        self._refresh(items)
        return True

    def retire(self, retiring: Iterable[LibraryItem]) -> list[LibraryItem]:
        """Mark rows retired (their entry left the catalogue); files stay until `prune`."""
        items = self.items()
        retired: list[LibraryItem] = []
        for item in retiring:
            current = items.get(item.job_id)
            if current is None or current.status == "retired":
                continue
            items[item.job_id] = replace(current, status="retired")
            retired.append(items[item.job_id])
        if not retired:
            return []
        self._write_manifest(items)
        for item in retired:
            folder = self.folder_of(item)
            # The sidecar follows the row so a recovered manifest keeps the status.
            if folder.is_dir():
                folders.write_meta(folder, item)
        self._refresh(items)
        return retired

    def prune(self) -> list[Path]:
        """Delete retired rows and their files, and folders no row names."""
        items = self.items()
        kept = {job_id: item for job_id, item in items.items() if item.status != "retired"}
        if len(kept) != len(items):
            self._write_manifest(kept)
        removed = self._remove_unreferenced(self.root, kept)
        self._refresh(kept)
        return removed

    def rebuild(self) -> None:
        """Rewrite library.sqlite and index.html from manifest.json; a damaged
        manifest is first reconstructed by `recover_manifest`."""
        try:
            items = self.items()
        except ManifestDamagedError:
            items = self.recover_manifest()
        self._refresh(items)

    def recover_manifest(self) -> dict[str, LibraryItem]:
        """Reconstruct manifest.json from the meta.json sidecars in videos/.

        Failed rows had no folder and are lost (the next run retries them).
        When a (entry, language) has several folders (a killed commit), the
        newest is current and the others become orphans for `prune`. The old
        manifest is kept as manifest.json.corrupt-<time>.
        """
        newest: dict[tuple[str, str], LibraryItem] = {}
        for folder in folders.job_folders(self.root):
            item = folders.read_meta(folder)
            if item is None or folder != self._folder_or_none(item) or not item_files_ok(self.root, item):
                continue
            best = newest.get(_key(item))
            if best is None or (item.created_at or "", item.job_id) > (best.created_at or "", best.job_id):
                newest[_key(item)] = item
        if self.manifest_path.exists():
            stamp = file_stamp(self._clock())
            os.replace(self.manifest_path, self.root / f"{MANIFEST_NAME}.corrupt-{stamp}")
        items = {item.job_id: item for item in newest.values()}
        self._write_manifest(items)
        return items

    def write_run_report(self, report: Mapping[str, Any]) -> Path:
        """runs/<UTC time>-<pid>.json, written atomically. Values JSON cannot
        hold (paths, datetimes) are written as their str()."""
        stamp = file_stamp(self._clock())
        runs = self.root / RUNS_DIR
        path = runs / f"{stamp}-{os.getpid()}.json"
        suffix = 1
        while path.exists():
            suffix += 1
            path = runs / f"{stamp}-{os.getpid()}-{suffix}.json"
        write_json_atomic(path, json.loads(json.dumps(dict(report), default=str)))
        return path

    # --- internals ---------------------------------------------------------------

    def _write_manifest(self, items: Mapping[str, LibraryItem]) -> None:
        write_manifest(self.manifest_path, items.values(), iso_utc(self._clock()))

    def _folder_or_none(self, item: LibraryItem) -> Path | None:
        try:
            return self.folder_of(item)
        except LibraryError:  # a hand-edited sidecar naming an impossible folder
            return None

    def _remove_unreferenced(self, below: Path, items: Mapping[str, LibraryItem]) -> list[Path]:
        """Delete job folders under `below` that no playable row names."""
        referenced = {self.folder_of(item) for item in items.values() if item.status in PLAYABLE_STATUSES}
        removed = []
        for folder in folders.job_folders(self.root):
            if folder not in referenced and (folder == below or below in folder.parents):
                folders.remove_job_folder(self.root, folder)
                removed.append(folder)
        return removed

    def _refresh(self, items: Mapping[str, LibraryItem]) -> None:
        build_index(self.sqlite_path, items.values())
        generated_at = iso_utc(self._clock())
        write_text_atomic(self.html_path, render_page(items.values(), generated_at, self._vtt_texts(items)))

    def _vtt_texts(self, items: Mapping[str, LibraryItem]) -> dict[str, str]:
        texts: dict[str, str] = {}
        for item in items.values():
            if item.status in PLAYABLE_STATUSES and item.captions_vtt:
                path = under(self.root, item.captions_vtt)
                if path.is_file():
                    texts[item.job_id] = path.read_text(encoding="utf-8")
        return texts
