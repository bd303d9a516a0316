"""manifest.json: golden layout, loud errors when damaged, and recovery from
the meta.json sidecars."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avatar_batch.library import Library, LibraryError, ManifestDamagedError
from avatar_batch.library.manifest import manifest_document, read_manifest, write_manifest
from tests.library.library_fixtures import broken_rows, commit_new, make_item

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "library" / "manifest.json"


def golden_items():
    # Deliberately out of order: the manifest sorts by (entry, language, job id).
    return [
        make_item(
            "2222222222222222",
            entry_id="parking",
            language="zh",
            question="停车在哪里？",
            answer="停车场在大楼后面。",
            status="fallback",
            telemetry={"peak_vram_gb": 0.0},
        ),
        make_item(
            "1111111111111111",
            entry_id="hours",
            video="videos/hours/en/1111111111111111/video.mp4",
            telemetry={"file_sizes_bytes": {"video": 1234}},
        ),
        make_item(
            "0000000000000000",
            entry_id="parking",
            language="en",
            status="failed",
            failure="ToolError: ffmpeg failed",
            duration_s=None,
        ),
    ]


def test_manifest_matches_golden(tmp_path: Path):
    path = tmp_path / "manifest.json"
    write_manifest(path, golden_items(), "2025-01-02T03:04:05Z")
    assert path.read_text(encoding="utf-8") == GOLDEN.read_text(encoding="utf-8")


def test_manifest_round_trips(tmp_path: Path):
    path = tmp_path / "manifest.json"
    write_manifest(path, golden_items(), "t")
    assert read_manifest(path) == {item.job_id: item for item in golden_items()}
    rows = manifest_document(golden_items(), "t")["items"]
    assert [(r["entry_id"], r["language"]) for r in rows] == [("hours", "en"), ("parking", "en"), ("parking", "zh")]


def test_a_missing_manifest_is_an_empty_library(library: Library):
    assert library.items() == {}


@pytest.mark.parametrize(
    "text, reason",
    [
        ('{"schema_version": 1, "items": [', "not valid JSON"),
        ("[]", "an 'items' list"),
        ('{"schema_version": 1, "items": [{"job_id": "x"}]}', "items[0]"),
        (
            '{"schema_version": 1, "items": [{"job_id": "x", "entry_id": "e", "language": "en", "persona": "p",'
            ' "department": "d", "question": "q", "answer": "a", "status": "done"}]}',
            "items[0]",
        ),
    ],
)
def test_a_damaged_manifest_says_how_to_recover(library: Library, text: str, reason: str):
    library.root.mkdir(parents=True)
    library.manifest_path.write_text(text, encoding="utf-8")
    with pytest.raises(ManifestDamagedError) as caught:
        library.items()
    message = str(caught.value)
    assert reason in message and str(library.manifest_path) in message
    assert "avatar-batch library rebuild" in message
    assert caught.value.exit_code == 65


def test_a_repeated_job_id_is_damage(library: Library):
    row = make_item("a" * 16).to_dict()
    library.root.mkdir(parents=True)
    library.manifest_path.write_text(json.dumps({"schema_version": 1, "items": [row, row]}))
    with pytest.raises(ManifestDamagedError, match="repeats job_id"):
        library.items()


def test_another_schema_version_is_not_damage(library: Library):
    library.root.mkdir(parents=True)
    library.manifest_path.write_text('{"schema_version": 2, "items": []}')
    with pytest.raises(LibraryError, match="schema_version 2") as caught:
        library.items()
    assert not isinstance(caught.value, ManifestDamagedError)


def test_recover_manifest_from_sidecars(library: Library, tiny_mp4: Path):
    hours = commit_new(library, tiny_mp4, "a" * 16)
    parking = commit_new(library, tiny_mp4, "b" * 16, entry_id="parking")
    library.retire([parking])
    library.record(make_item("c" * 16, entry_id="lost", status="failed"))
    expected = {hours.job_id: hours, parking.job_id: library.items()[parking.job_id]}
    (library.root / "videos/hours/en" / ("0" * 16)).mkdir()  # no sidecar: not a job folder
    library.manifest_path.write_text("{ truncated by a full disk")
    recovered = library.recover_manifest()
    assert recovered == expected == library.items()  # the failed row had no folder: retried next run
    assert (library.root / "manifest.json.corrupt-20250102T030405Z").read_text() == "{ truncated by a full disk"
    assert broken_rows(library) == []


def test_recovery_prefers_the_newest_complete_folder(library: Library, tiny_mp4: Path):
    old = commit_new(library, tiny_mp4, "a" * 16, created_at="2025-01-01T00:00:00Z")
    old_folder = library.root / "videos/hours/en" / old.job_id
    kept_copy = library.root / "kept"
    kept_copy.mkdir()
    for path in old_folder.iterdir():
        (kept_copy / path.name).write_bytes(path.read_bytes())
    new = commit_new(library, tiny_mp4, "b" * 16, created_at="2025-02-01T00:00:00Z")
    kept_copy.rename(old_folder)  # as if the killed run never deleted it
    half = commit_new(library, tiny_mp4, "c" * 16, entry_id="parking")
    (library.root / half.poster).unlink()  # a folder with a missing file is not trusted
    library.manifest_path.unlink()
    assert set(library.recover_manifest()) == {new.job_id}
    assert sorted(p.name for p in library.prune()) == sorted([old.job_id, half.job_id])


def test_rebuild_recovers_a_damaged_manifest(library: Library, tiny_mp4: Path):
    item = commit_new(library, tiny_mp4, "a" * 16)
    library.manifest_path.write_text("")
    library.sqlite_path.unlink()
    library.rebuild()
    assert library.items() == {item.job_id: item} and library.sqlite_path.is_file()
