"""A run killed at any step of a commit leaves a consistent library.

Each test replays a commit, making the n-th rename (or one step function)
fail as if the process died there, then re-opens the library as the next run
would and checks: the manifest reads, no row names a missing file, the key's
current row is the old or the new version, and `lock()` + `prune()` clean up
whatever the dead run left.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from avatar_batch.library import Library, folders, store
from tests.library.library_fixtures import FIXED_TIME, broken_rows, commit_new, make_item, stage

OLD_ID, NEW_ID = "a" * 16, "b" * 16


class Crash(Exception):
    """Stands in for SIGKILL at a chosen point."""


def count_replaces(monkeypatch, action) -> int:
    calls = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda *a, **k: calls.append(a) or real(*a, **k))
    action()
    monkeypatch.setattr(os, "replace", real)
    return len(calls)


def crash_on_replace(monkeypatch, n: int) -> None:
    real = os.replace
    calls = [0]

    def replace(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            raise Crash(f"killed at rename {n}")
        return real(*args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


def check_next_run(root: Path, tiny_mp4: Path, allowed_ids: set[str]) -> None:
    library = Library(root, clock=lambda: FIXED_TIME)  # a new process would re-open it
    assert broken_rows(library) == []
    current = {item.job_id for item in library.items().values() if (item.entry_id, item.language) == ("hours", "en")}
    assert current and current <= allowed_ids
    with library.lock():
        assert not list(root.rglob(".tmp-*"))
        library.prune()
        referenced = {library.folder_of(item) for item in library.items().values()}
        assert set(folders.job_folders(root)) == referenced
        assert all(library.verify_item(item) for item in library.items().values())
        final = commit_new(library, tiny_mp4, "c" * 16)
        assert set(library.items()) == {final.job_id} and broken_rows(library) == []


def supersede(library: Library, tiny_mp4: Path) -> None:
    staged, files = stage(library, NEW_ID, tiny_mp4)
    library.commit(make_item(NEW_ID, answer="New answer."), staged, files)


def test_every_rename_of_a_superseding_commit(tmp_path: Path, tiny_mp4: Path, monkeypatch):
    probe = Library(tmp_path / "probe")
    commit_new(probe, tiny_mp4, OLD_ID)
    num_renames = count_replaces(monkeypatch, lambda: supersede(probe, tiny_mp4))
    assert num_renames >= 8  # 4 files + meta + folder + manifest + sqlite + html
    for n in range(1, num_renames + 1):
        library = Library(tmp_path / f"lib{n}", clock=lambda: FIXED_TIME)
        commit_new(library, tiny_mp4, OLD_ID)
        crash_on_replace(monkeypatch, n)
        with pytest.raises(Crash):
            supersede(library, tiny_mp4)
        monkeypatch.undo()
        check_next_run(library.root, tiny_mp4, {OLD_ID, NEW_ID})


def test_every_rename_of_a_recommit_into_an_existing_folder(tmp_path: Path, tiny_mp4: Path, monkeypatch):
    def recommit(library: Library) -> None:
        staged, files = stage(library, OLD_ID, tiny_mp4, with_extras=False)
        library.commit(make_item(OLD_ID), staged, files)

    probe = Library(tmp_path / "probe")
    commit_new(probe, tiny_mp4, OLD_ID)
    num_renames = count_replaces(monkeypatch, lambda: recommit(probe))
    for n in range(1, num_renames + 1):
        library = Library(tmp_path / f"lib{n}", clock=lambda: FIXED_TIME)
        commit_new(library, tiny_mp4, OLD_ID)
        crash_on_replace(monkeypatch, n)
        with pytest.raises(Crash):
            recommit(library)
        monkeypatch.undo()
        check_next_run(library.root, tiny_mp4, {OLD_ID})


@pytest.mark.parametrize(
    "target, name",
    [(folders, "remove_job_folder"), (folders, "remove_stale_files"), (store, "build_index"), (store, "render_page")],
)
def test_a_crash_in_a_later_step(tmp_path: Path, tiny_mp4: Path, monkeypatch, target, name):
    library = Library(tmp_path / "lib", clock=lambda: FIXED_TIME)
    commit_new(library, tiny_mp4, OLD_ID)

    def crash(*args, **kwargs):
        raise Crash(name)

    monkeypatch.setattr(target, name, crash)
    with pytest.raises(Crash):
        supersede(library, tiny_mp4)
    monkeypatch.undo()
    assert set(library.items()) == {NEW_ID}  # the row flipped before the crash
    check_next_run(library.root, tiny_mp4, {NEW_ID})


def test_a_crash_while_pruning(tmp_path: Path, tiny_mp4: Path, monkeypatch):
    library = Library(tmp_path / "lib", clock=lambda: FIXED_TIME)
    gone = commit_new(library, tiny_mp4, OLD_ID, entry_id="closed")
    commit_new(library, tiny_mp4, NEW_ID)
    library.retire([gone])
    monkeypatch.setattr(folders, "remove_job_folder", lambda *a: (_ for _ in ()).throw(Crash("prune")))
    with pytest.raises(Crash):
        library.prune()
    monkeypatch.undo()
    assert set(library.items()) == {NEW_ID} and broken_rows(library) == []
    assert library.prune() == [library.root / "videos/closed/en" / OLD_ID]


def test_rebuild_restores_derived_files_after_a_crash(tmp_path: Path, tiny_mp4: Path, monkeypatch):
    library = Library(tmp_path / "lib", clock=lambda: FIXED_TIME)
    monkeypatch.setattr(store, "build_index", lambda *a, **k: (_ for _ in ()).throw(Crash("sqlite")))
    with pytest.raises(Crash):
        commit_new(library, tiny_mp4, OLD_ID)
    monkeypatch.undo()
    assert not library.sqlite_path.exists() and set(library.items()) == {OLD_ID}
    library.rebuild()
    assert library.sqlite_path.is_file() and OLD_ID in library.html_path.read_text()
