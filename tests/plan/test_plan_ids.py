"""Job ids: canonical, stable across runs and key orders, and file digests cached."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from avatar_batch.plan import ids
from avatar_batch.plan.ids import FileDigests, canonical_json, job_id

# A fixed document and its id. If this changes, every library in the field
# would re-render everything: change it only on purpose (with plan.SCHEMA).
GOLDEN_FIELDS = {"answer": "Wir öffnen um 9 Uhr.", "language": "de", "settings": {"seed": 420, "size": "688*368"}}
GOLDEN_ID = "a26bf3fe2acff684"


def test_canonical_json_is_compact_sorted_and_keeps_unicode():
    assert canonical_json({"b": 1, "a": ["é", 2.5]}) == '{"a":["é",2.5],"b":1}'


def test_job_id_matches_golden_and_is_16_hex_of_sha256():
    expected = hashlib.sha256(canonical_json(GOLDEN_FIELDS).encode("utf-8")).hexdigest()[:16]
    assert job_id(GOLDEN_FIELDS) == expected == GOLDEN_ID


def test_job_id_ignores_key_order_but_not_values():
    reordered = {"settings": {"size": "688*368", "seed": 420}, "language": "de", "answer": "Wir öffnen um 9 Uhr."}
    assert job_id(reordered) == GOLDEN_ID
    assert job_id({**GOLDEN_FIELDS, "language": "en"}) != GOLDEN_ID


def test_file_digests_hash_each_file_once(tmp_path: Path, monkeypatch):
    calls: list[Path] = []
    real = ids._hash_file
    monkeypatch.setattr(ids, "_hash_file", lambda path: calls.append(path) or real(path))
    image = tmp_path / "a.png"
    image.write_bytes(b"pixels")
    digests = FileDigests()
    first = digests.sha256(image)
    assert digests.sha256(image) == first == hashlib.sha256(b"pixels").hexdigest()
    assert calls == [image]


def test_file_digests_rehash_a_changed_file(tmp_path: Path):
    image = tmp_path / "a.png"
    image.write_bytes(b"pixels")
    digests = FileDigests()
    before = digests.sha256(image)
    image.write_bytes(b"other pixels")
    os.utime(image, ns=(1, 1))  # a new mtime even on coarse-timestamp filesystems
    assert digests.sha256(image) == hashlib.sha256(b"other pixels").hexdigest() != before
