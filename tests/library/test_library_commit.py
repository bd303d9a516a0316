"""Commit, supersede, record, retire, prune, staging and run reports."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from avatar_batch.core.errors import JobError
from avatar_batch.library import Library, LibraryError
from avatar_batch.library.layout import FILE_SIZES_KEY
from tests.library.library_fixtures import broken_rows, commit_new, make_item, stage


def test_commit_moves_files_into_place_and_writes_everything(library: Library, tiny_mp4: Path):
    staged, files = stage(library, "a" * 16, tiny_mp4)
    item = library.commit(make_item("a" * 16), staged, files)
    folder = library.root / "videos" / "hours" / "en" / ("a" * 16)
    assert sorted(p.name for p in folder.iterdir()) == [
        "captions.srt",
        "captions.vtt",
        "meta.json",
        "poster.jpg",
        "video.mp4",
    ]
    assert item.video == f"videos/hours/en/{'a' * 16}/video.mp4"
    assert item.captions_vtt.endswith("/captions.vtt") and item.poster.endswith("/poster.jpg")
    assert item.telemetry[FILE_SIZES_KEY]["video"] == tiny_mp4.stat().st_size
    assert library.items() == {item.job_id: item}
    assert json.loads((folder / "meta.json").read_text()) == item.to_dict()
    assert not staged.exists()  # scratch files (speech.wav) went with it
    assert library.sqlite_path.is_file() and library.html_path.is_file()
    assert library.verify_item(item)


def test_commit_fills_created_at_and_clears_failure(library: Library, tiny_mp4: Path):
    staged, files = stage(library, "a" * 16, tiny_mp4, with_extras=False)
    item = library.commit(make_item("a" * 16, created_at=None, failure="old"), staged, files)
    assert item.created_at == "2025-01-02T03:04:05Z" and item.failure is None
    assert item.poster is None and item.captions_vtt is None


def test_a_new_version_supersedes_the_old_one_of_the_same_key(library: Library, tiny_mp4: Path):
    old = commit_new(library, tiny_mp4, "a" * 16)
    other_language = commit_new(library, tiny_mp4, "b" * 16, language="zh")
    new = commit_new(library, tiny_mp4, "c" * 16, answer="New answer.")
    assert set(library.items()) == {new.job_id, other_language.job_id}
    assert not (library.root / old.video).exists()
    assert not (library.root / "videos/hours/en" / old.job_id).exists()
    assert (library.root / other_language.video).is_file()


def test_recommitting_the_same_job_replaces_files_in_place(library: Library, tiny_mp4: Path):
    first = commit_new(library, tiny_mp4, "a" * 16)
    staged, files = stage(library, "a" * 16, tiny_mp4, with_extras=False)
    second = library.commit(make_item("a" * 16), staged, files)
    folder = library.root / "videos/hours/en" / ("a" * 16)
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "video.mp4"]
    assert first.poster is not None and second.poster is None
    assert library.items() == {second.job_id: second} and not broken_rows(library)


def test_commit_refuses_a_missing_or_empty_video(library: Library):
    staged = library.staging_dir("a" * 16)
    (staged / "empty.mp4").write_bytes(b"")
    with pytest.raises(JobError, match="missing or empty"):
        library.commit(make_item("a" * 16), staged, {"video": "empty.mp4"})
    with pytest.raises(JobError, match="needs a 'video'"):
        library.commit(make_item("a" * 16), staged, {"poster": "p.jpg"})
    assert library.items() == {}


def test_commit_refuses_ids_that_are_not_folder_names(library: Library, tiny_mp4: Path):
    staged, files = stage(library, "a" * 16, tiny_mp4)
    with pytest.raises(LibraryError, match="entry id"):
        library.commit(make_item("a" * 16, entry_id="../escape"), staged, files)
    with pytest.raises(LibraryError, match="job id"):
        library.staging_dir("../x")


def test_a_failed_rerender_keeps_the_good_video(library: Library, tiny_mp4: Path):
    good = commit_new(library, tiny_mp4, "a" * 16)
    failed = make_item("c" * 16, status="failed", failure="CUDA out of memory", duration_s=None)
    assert library.record(failed) is False
    assert library.items() == {good.job_id: good}
    assert (library.root / good.video).is_file()


def test_a_failure_is_recorded_when_there_is_no_good_video(library: Library):
    first = make_item("a" * 16, status="failed", failure="tts crashed", video="videos/x.mp4")
    assert library.record(first) is True
    again = make_item("b" * 16, status="failed", failure="still broken")
    assert library.record(again) is True
    items = library.items()
    assert list(items) == [again.job_id]  # one row per key: the latest failure
    assert items[again.job_id].video is None
    stored = library.record(make_item("c" * 16, language="zh", status="failed"))
    assert stored and len(library.items()) == 2


def test_record_and_commit_check_status(library: Library, tiny_mp4: Path):
    with pytest.raises(ValueError):
        library.record(make_item("a" * 16, status="completed"))
    staged, files = stage(library, "a" * 16, tiny_mp4)
    with pytest.raises(ValueError):
        library.commit(make_item("a" * 16, status="failed"), staged, files)


def test_a_success_replaces_a_failed_row(library: Library, tiny_mp4: Path):
    library.record(make_item("a" * 16, status="failed"))
    good = commit_new(library, tiny_mp4, "b" * 16)
    assert library.items() == {good.job_id: good}


def test_retire_keeps_files_then_prune_deletes_them(library: Library, tiny_mp4: Path):
    gone = commit_new(library, tiny_mp4, "a" * 16, entry_id="closed")
    kept = commit_new(library, tiny_mp4, "b" * 16)
    retired = library.retire([gone, replace(kept, job_id="f" * 16)])
    assert [item.job_id for item in retired] == [gone.job_id]  # unknown ids are ignored
    assert library.items()[gone.job_id].status == "retired"
    assert (library.root / gone.video).is_file()
    meta = json.loads((library.root / "videos/closed/en" / gone.job_id / "meta.json").read_text())
    assert meta["status"] == "retired"
    assert library.retire([gone]) == []  # already retired
    removed = library.prune()
    assert removed == [library.root / "videos/closed/en" / gone.job_id]
    assert set(library.items()) == {kept.job_id}
    assert not (library.root / "videos/closed").exists()  # empty parents go too
    assert (library.root / kept.video).is_file()


def test_prune_removes_orphan_folders(library: Library, tiny_mp4: Path):
    kept = commit_new(library, tiny_mp4, "b" * 16)
    orphan = library.root / "videos/hours/en" / ("9" * 16)
    orphan.mkdir(parents=True)
    (orphan / "video.mp4").write_bytes(b"left by a killed run")
    assert library.prune() == [orphan]
    assert not orphan.exists() and (library.root / kept.video).is_file()


def test_staging_dirs_are_fresh_temp_folders_inside_the_library(library: Library):
    first, second = library.staging_dir("a" * 16), library.staging_dir("a" * 16)
    assert first != second and first.parent == second.parent == library.root
    assert first.name.startswith(".tmp-" + "a" * 16 + "-")


def test_write_run_report(library: Library):
    path = library.write_run_report({"jobs": 3, "library": library.root})
    again = library.write_run_report({"jobs": 4})
    assert path.parent == library.root / "runs" and path.name.startswith("20250102T030405Z-")
    assert path != again
    assert json.loads(path.read_text()) == {"jobs": 3, "library": str(library.root)}
