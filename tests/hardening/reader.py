"""A reader that polls a library while runs write it, as a kiosk or a web
page would: it reads manifest.json, library.sqlite and index.html without any
lock, and notes every time it sees a half-written file or a playable row
naming a file that is missing or not the size the row recorded.

A row may legitimately lose its files when a newer manifest supersedes it, so
a finding only counts if the file it came from was not replaced while the
reader was looking (same inode, size and mtime before and after)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PLAYABLE = ("completed", "fallback")
FILE_KEYS = ("video", "poster", "captions_vtt", "captions_srt")
DATA_BLOCK = re.compile(r'<script type="application/json" id="library-data">(.*?)</script>', re.S)


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


class LibraryReader(threading.Thread):
    def __init__(self, library: Path, period_s: float = 0.02):
        super().__init__(daemon=True)
        self.library = library
        self.period_s = period_s
        self.samples = 0  # complete, consistent looks at a file
        self.retried = 0  # looks discarded because the file was replaced meanwhile
        self.problems: list[str] = []
        self._halt = threading.Event()

    def __enter__(self) -> LibraryReader:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._halt.set()
        self.join(timeout=10)

    def run(self) -> None:
        while not self._halt.is_set():
            for look in (self._manifest, self._sqlite, self._html):
                self._count(look())
            time.sleep(self.period_s)

    def _count(self, finding: tuple[Path, tuple | None, list[str]] | None) -> None:
        if finding is None:
            return
        path, before, problems = finding
        if problems and _identity(path) != before:
            self.retried += 1
        elif problems:
            self.problems += problems
        else:
            self.samples += 1

    def _row_problems(self, source: str, rows: Iterable[dict[str, Any]]) -> list[str]:
        problems = []
        for row in rows:
            if row.get("status") not in PLAYABLE:
                continue
            sizes = (row.get("telemetry") or {}).get("file_sizes_bytes") or {}
            for key in FILE_KEYS:
                if not row.get(key):
                    problems.append(f"{source}: {row['job_id']} is {row['status']} but names no {key}")
                    continue
                try:
                    size = (self.library / row[key]).stat().st_size
                except FileNotFoundError:
                    problems.append(f"{source}: {row['job_id']} names missing {row[key]}")
                    continue
                if size == 0 or (key in sizes and sizes[key] != size):
                    problems.append(f"{source}: {row['job_id']} names {row[key]} of {size} bytes, not {sizes.get(key)}")
        return problems

    def _manifest(self):
        path = self.library / "manifest.json"
        try:
            with open(path, "rb") as handle:
                stat = os.fstat(handle.fileno())
                data = handle.read()
        except FileNotFoundError:
            return None
        before = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        try:
            rows = json.loads(data)["items"]
        except (ValueError, KeyError, TypeError) as exc:
            return path, before, [f"manifest.json is not whole JSON ({exc}): {len(data)} bytes"]
        return path, before, self._row_problems("manifest.json", rows)

    def _sqlite(self):
        path = self.library / "library.sqlite"
        before = _identity(path)
        if before is None:
            return None
        columns = ("job_id", "status", *FILE_KEYS, "telemetry")
        try:
            db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
            try:
                found = db.execute(f"SELECT {', '.join(columns)} FROM items").fetchall()
            finally:
                db.close()
        except sqlite3.Error as exc:
            return path, before, [f"library.sqlite cannot be read: {exc}"]
        rows = [dict(zip(columns, values)) for values in found]
        for row in rows:
            row["telemetry"] = json.loads(row["telemetry"] or "{}")
        return path, before, self._row_problems("library.sqlite", rows)

    def _html(self):
        path = self.library / "index.html"
        try:
            with open(path, "rb") as handle:
                stat = os.fstat(handle.fileno())
                text = handle.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return None
        before = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        block = DATA_BLOCK.search(text)
        if not text.rstrip().endswith("</html>") or block is None:
            return path, before, [f"index.html is not whole: {len(text)} characters"]
        try:
            json.loads(block.group(1))
        except ValueError as exc:
            return path, before, [f"index.html data block is not JSON: {exc}"]
        return path, before, []
