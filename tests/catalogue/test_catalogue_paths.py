"""The catalogue root and the rule that every path stays inside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from avatar_batch.catalogue.paths import PathRefused, find_catalogue_root, resolve_inside


@pytest.mark.parametrize("marker", ["pyproject.toml", ".git", "avatar-batch.toml"])
def test_root_is_the_nearest_ancestor_with_a_marker(tmp_path, marker):
    (tmp_path / "proj" / "questions" / "deep").mkdir(parents=True)
    target = tmp_path / "proj" / marker
    target.mkdir() if marker == ".git" else target.write_text("")
    catalogue = tmp_path / "proj" / "questions" / "deep" / "c.yaml"
    assert find_catalogue_root(catalogue) == (tmp_path / "proj").resolve()


def test_root_without_markers_is_the_catalogue_folder(tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    markers = ("pyproject.toml", ".git", "avatar-batch.toml")
    if any((p / m).exists() for p in tmp_path.resolve().parents for m in markers):
        pytest.skip("a folder above the temporary directory holds a root marker")
    assert find_catalogue_root(folder / "c.yaml") == folder.resolve()


def test_repository_catalogues_have_the_repository_as_root():
    repo = Path(__file__).resolve().parents[2]
    assert find_catalogue_root(repo / "questions" / "triage.yaml") == repo


@pytest.fixture
def tree(tmp_path):
    root = (tmp_path / "root").resolve()
    (root / "questions").mkdir(parents=True)
    (root / "assets").mkdir()
    (root / "assets" / "a.png").write_bytes(b"x")
    return root


def test_relative_paths_resolve_against_the_base(tree):
    found = resolve_inside("../assets/a.png", tree / "questions", tree)
    assert found == tree / "assets" / "a.png"


def test_missing_files_still_resolve(tree):
    assert resolve_inside("../out/lib", tree / "questions", tree) == tree / "out" / "lib"


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        ("/etc/passwd", "absolute"),
        ("~/secret.png", "absolute"),
        ("../../outside.png", "climbs out"),
        ("../assets/../../x", "climbs out"),
        ("", "empty"),
        ("a\0b", "NUL"),
    ],
)
def test_refused_paths(tree, written, reason):
    refused = resolve_inside(written, tree / "questions", tree)
    assert isinstance(refused, PathRefused)
    assert reason in refused.message
    assert str(tree) in refused.fix or reason in ("empty", "NUL")


def test_symlinked_folder_leading_outside_is_refused(tree, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "a.png").write_bytes(b"x")
    (tree / "assets" / "linked").symlink_to(outside, target_is_directory=True)
    refused = resolve_inside("../assets/linked/a.png", tree / "questions", tree)
    assert isinstance(refused, PathRefused)
    assert "symlink" in refused.message
