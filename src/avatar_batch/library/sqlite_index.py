"""library.sqlite: a queryable copy of the manifest with full-text search.

The database is always built whole in a temporary file and renamed over the
old one. A reader that has the old file open keeps reading the old inode, so
it never sees a half-built index. The rollback journal (not WAL) is used
because a WAL database is three files and a rename moves only one.

Full-text search uses FTS5's `trigram` tokenizer (SQLite >= 3.34): the default
`unicode61` tokenizer treats a run of Han characters as one token, so a
Chinese query for a word inside a sentence would find nothing. Trigram
matching needs 3 characters; shorter terms (most Chinese words are 2) are
matched with LIKE, which FTS5 answers with the same index where it can.
When trigram is not compiled in, the table uses `unicode61` and every search
falls back to LIKE over the items table: slower, same results.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import fields
from pathlib import Path

from avatar_batch.core.fsio import atomic_path
from avatar_batch.core.records import LibraryItem
from avatar_batch.library.layout import PLAYABLE_STATUSES

TRIGRAM_MIN_CHARS = 3
SQLITE_FULL = 13  # the result code for "database or disk is full"
_JSON_COLUMNS = ("settings", "telemetry")
_SQL_TYPES = {"float | None": "REAL", "int | None": "INTEGER", "str": "TEXT", "str | None": "TEXT"}


def item_columns() -> list[tuple[str, str]]:
    """(column, SQL type) for every LibraryItem field, in declaration order."""
    return [(f.name, _SQL_TYPES.get(str(f.type), "TEXT")) for f in fields(LibraryItem)]


def _create_schema(db: sqlite3.Connection, tokenizer: str) -> None:
    columns = ", ".join(
        f"{name} {sql_type} PRIMARY KEY" if name == "job_id" else f"{name} {sql_type}"
        for name, sql_type in item_columns()
    )
    db.execute(f"CREATE TABLE items ({columns})")
    db.execute("CREATE INDEX items_by_key ON items (entry_id, language)")
    db.execute(
        "CREATE VIRTUAL TABLE items_fts USING fts5("
        f"question, answer, content='items', content_rowid='rowid', tokenize='{tokenizer}')"
    )
    db.execute("CREATE TABLE index_info (key TEXT PRIMARY KEY, value TEXT)")
    db.execute("INSERT INTO index_info VALUES ('tokenizer', ?)", (tokenizer,))


def has_trigram() -> bool:
    db = sqlite3.connect(":memory:")
    try:
        db.execute("CREATE VIRTUAL TABLE probe USING fts5(text, tokenize='trigram')")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        db.close()


def build_index(db_path: Path, items: Iterable[LibraryItem], tokenizer: str | None = None) -> None:
    """Write a fresh database for `items` and rename it over `db_path`."""
    chosen = tokenizer or ("trigram" if has_trigram() else "unicode61")
    names = [name for name, _ in item_columns()]
    rows = [_row(item, names) for item in sorted(items, key=lambda i: (i.entry_id, i.language, i.job_id))]
    with atomic_path(db_path) as tmp:
        db = sqlite3.connect(tmp)
        try:
            # No journal and no syncs while building: the file is private until
            # atomic_path fsyncs and renames it, so a crash only loses a temp file.
            db.execute("PRAGMA journal_mode = OFF")
            db.execute("PRAGMA synchronous = OFF")
            _create_schema(db, chosen)
            marks = ", ".join("?" for _ in names)
            db.executemany(f"INSERT INTO items ({', '.join(names)}) VALUES ({marks})", rows)
            db.execute("INSERT INTO items_fts(items_fts) VALUES ('rebuild')")
            db.commit()
        except sqlite3.OperationalError as exc:
            # SQLite reports a full disk in its own words; say it as the OS does.
            if getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL or "disk is full" in str(exc):
                raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (SQLite: {exc})", str(db_path)) from exc
            raise
        finally:
            db.close()


def _row(item: LibraryItem, names: Sequence[str]) -> tuple:
    data = item.to_dict()
    for name in _JSON_COLUMNS:
        data[name] = json.dumps(data[name], sort_keys=True, ensure_ascii=False)
    return tuple(data[name] for name in names)


def search(db_path: Path, query: str, statuses: Sequence[str] = PLAYABLE_STATUSES) -> list[str]:
    """Job ids whose question or answer contains every whitespace-separated
    term of `query` (case-insensitive for ASCII), with a status in `statuses`;
    best match first when the index can rank, else by entry and language."""
    terms = query.split()
    if not terms or not statuses:
        return []
    db = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        (tokenizer,) = db.execute("SELECT value FROM index_info WHERE key = 'tokenizer'").fetchone()
        if tokenizer == "trigram" and all(len(term) >= TRIGRAM_MIN_CHARS for term in terms):
            where, params, order = _match_condition(terms)
        else:
            where, params, order = _like_condition(terms, "items_fts" if tokenizer == "trigram" else "items")
        status_marks = ", ".join("?" for _ in statuses)
        sql = (
            "SELECT items.job_id FROM items_fts JOIN items ON items.rowid = items_fts.rowid "
            f"WHERE {where} AND items.status IN ({status_marks}) ORDER BY {order}"
        )
        return [row[0] for row in db.execute(sql, (*params, *statuses))]
    finally:
        db.close()


def _match_condition(terms: Sequence[str]) -> tuple[str, list[str], str]:
    # Each term as a quoted FTS5 string, so user punctuation is never syntax.
    expression = " AND ".join('"' + term.replace('"', '""') + '"' for term in terms)
    return "items_fts MATCH ?", [expression], "items_fts.rank"


def _like_condition(terms: Sequence[str], table: str) -> tuple[str, list[str], str]:
    conditions: list[str] = []
    params: list[str] = []
    for term in terms:
        pattern = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conditions.append(f"({table}.question LIKE ? ESCAPE '\\' OR {table}.answer LIKE ? ESCAPE '\\')")
        params += [pattern, pattern]
    return " AND ".join(conditions), params, "items.entry_id, items.language"
