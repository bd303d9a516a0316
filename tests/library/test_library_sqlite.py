"""library.sqlite: every manifest column, full-text search in English and
Chinese, and a rebuild that never disturbs a reader."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import fields
from pathlib import Path

import pytest

from avatar_batch.core.records import LibraryItem
from avatar_batch.library import search
from avatar_batch.library.sqlite_index import build_index, has_trigram
from tests.library.library_fixtures import make_item

ITEMS = [
    make_item("1" * 16, entry_id="hours", question="When do you open?", answer="We open at nine every weekday."),
    make_item("2" * 16, entry_id="parking", question="Where can I park?", answer="Parking is behind the building."),
    make_item("3" * 16, entry_id="hours", language="zh", question="你们几点开门？", answer="我们每个工作日九点开门。"),
    make_item(
        "4" * 16,
        entry_id="refund",
        language="zh",
        question="如何申请退款？",
        answer="请在三十天内联系客服申请退款。",
        status="fallback",
    ),
    make_item(
        "5" * 16,
        entry_id="wifi",
        question="Is there Wi-Fi?",
        answer="Yes, 100% free: ask for the code.",
        telemetry={"peak_vram_gb": 1.5},
    ),
    make_item(
        "6" * 16, entry_id="closed", question="Is the old desk open?", answer="The desk closed.", status="retired"
    ),
]


@pytest.fixture(params=["trigram", "unicode61"])
def db_path(request, tmp_path: Path) -> Path:
    if request.param == "trigram" and not has_trigram():
        pytest.skip("this SQLite has no trigram tokenizer")
    path = tmp_path / "library.sqlite"
    build_index(path, ITEMS, tokenizer=request.param)
    return path


def test_items_table_has_every_manifest_column(db_path: Path):
    db = sqlite3.connect(db_path)
    columns = [row[1] for row in db.execute("PRAGMA table_info(items)")]
    assert columns == [f.name for f in fields(LibraryItem)]
    settings, telemetry = db.execute("SELECT settings, telemetry FROM items WHERE job_id = ?", ("5" * 16,)).fetchone()
    assert json.loads(settings) == {"seed": 420} and json.loads(telemetry) == {"peak_vram_gb": 1.5}
    assert db.execute("SELECT count(*) FROM items").fetchone() == (len(ITEMS),)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # one file: renames cleanly


@pytest.mark.parametrize(
    "query, expected",
    [
        ("open", ["1" * 16]),  # the retired row matches too but is not playable
        ("OPEN nine", ["1" * 16]),
        ("park building", ["2" * 16]),
        ("开门", ["3" * 16]),  # a two-character Chinese word inside a sentence
        ("申请退款", ["4" * 16]),
        ("退款 三十天", ["4" * 16]),
        ("100%", ["5" * 16]),  # LIKE wildcards are literal
        ('Wi-Fi "code"', []),  # quotes and dashes are text, not query syntax
        ("Wi-Fi", ["5" * 16]),
        ("Wi_Fi", []),
        ("nothing-like-this", []),
        ("   ", []),
    ],
)
def test_search(db_path: Path, query: str, expected: list[str]):
    assert search(db_path, query) == expected


def test_search_can_include_other_statuses(db_path: Path):
    assert sorted(search(db_path, "open", statuses=("completed", "retired"))) == ["1" * 16, "6" * 16]


def test_search_a_library_whose_path_needs_quoting(tmp_path: Path):
    path = tmp_path / "my library #1 ü" / "library.sqlite"
    path.parent.mkdir()
    build_index(path, ITEMS)
    assert search(path, "nine") == ["1" * 16]


def test_trigram_is_used_when_available(tmp_path: Path):
    path = tmp_path / "library.sqlite"
    build_index(path, ITEMS)
    tokenizer = sqlite3.connect(path).execute("SELECT value FROM index_info").fetchone()[0]
    assert tokenizer == ("trigram" if has_trigram() else "unicode61")


def test_a_reader_of_the_old_file_is_not_disturbed_by_a_rebuild(tmp_path: Path):
    path = tmp_path / "library.sqlite"
    build_index(path, ITEMS[:2])
    reader = sqlite3.connect(path)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM items").fetchone() == (2,)
    build_index(path, ITEMS)
    assert reader.execute("SELECT count(*) FROM items").fetchone() == (2,)
    reader.close()
    assert sqlite3.connect(path).execute("SELECT count(*) FROM items").fetchone() == (len(ITEMS),)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["library.sqlite"]
