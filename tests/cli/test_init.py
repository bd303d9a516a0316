"""`init DIR` starts a project outside this repository; the path error says how."""

from __future__ import annotations

import glob
import json
import shutil
import tomllib
from pathlib import Path

from typer.testing import CliRunner

from avatar_batch.catalogue.scaffold import scaffold_files
from avatar_batch.cli import app

REPO = Path(__file__).resolve().parents[2]
SCAFFOLD = REPO / "src" / "avatar_batch" / "scaffold"


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_init_then_validate_plan_and_render_from_another_folder(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    made = invoke("init", "../hospital")
    assert made.exit_code == 0, made.output
    project = tmp_path / "hospital"
    assert (project / "avatar-batch.toml").is_file() and (project / "README.md").is_file()
    assert sorted(p.name for p in (project / "assets").iterdir()) == ["dr_chen.png", "nurse_li.png"]

    catalogue = Path("../hospital/questions/faq.yaml")
    checked = invoke("validate", catalogue)
    assert checked.exit_code == 0, checked.output
    assert "2 entries, 2 personas" in checked.output
    planned = invoke("plan", catalogue, "--json")
    assert planned.exit_code == 2, planned.output  # work is pending
    assert len(json.loads(planned.output)["to_render"]) == 4
    rendered = invoke("render", catalogue, "--renderer", "still", "--preset", "quick", "--only", "opening-hours")
    assert rendered.exit_code == 0, rendered.output
    manifest = json.loads((project / "output" / "faq" / "manifest.json").read_text(encoding="utf-8"))
    rows = sorted((row["entry_id"], row["language"], row["status"], row["persona"]) for row in manifest["items"])
    assert rows == [("opening-hours", lang, "completed", "nurse_li") for lang in ("en", "zh")]
    assert not (elsewhere / "output").exists()  # nothing lands in the working folder


def test_init_never_overwrites_and_writes_nothing_when_one_file_exists(tmp_path):
    project = tmp_path / "p"
    (project / "questions").mkdir(parents=True)
    mine = project / "questions" / "faq.yaml"
    mine.write_text("my own catalogue\n", encoding="utf-8")
    refused = invoke("init", project)
    assert refused.exit_code == 73, refused.output
    assert "already holds questions/faq.yaml" in refused.output and "nothing was written" in refused.output
    assert mine.read_text(encoding="utf-8") == "my own catalogue\n"
    assert sorted(p.relative_to(project).as_posix() for p in project.rglob("*")) == ["questions", "questions/faq.yaml"]


def test_init_twice_refuses(tmp_path):
    assert invoke("init", tmp_path / "p").exit_code == 0
    again = invoke("init", tmp_path / "p")
    assert again.exit_code == 73
    assert "avatar-batch.toml" in again.output and "nothing was written" in again.output


def test_init_on_a_file_is_a_usage_error(tmp_path):
    (tmp_path / "f").write_text("x")
    result = invoke("init", tmp_path / "f")
    assert result.exit_code == 2 and "is a file" in result.output


def test_copying_the_three_folders_without_a_marker_names_the_fix(tmp_path):
    hospital = tmp_path / "hospital"
    for folder in ("questions", "prompts", "assets"):
        shutil.copytree(REPO / folder, hospital / folder)
    refused = invoke("validate", hospital / "questions" / "triage.yaml")
    assert refused.exit_code == 65
    text = " ".join(refused.output.split())  # rich may wrap long lines
    assert "climbs out of the catalogue root" in text
    assert "create an empty avatar-batch.toml" in text and "avatar-batch init DIR" in text
    (hospital / "avatar-batch.toml").write_text("")
    fixed = invoke("validate", hospital / "questions" / "triage.yaml")
    assert fixed.exit_code == 0, fixed.output


def test_scaffold_portraits_and_prompts_are_the_repository_ones():
    for folder in ("assets", "prompts"):
        for path in (REPO / folder).iterdir():
            assert (SCAFFOLD / folder / path.name).read_bytes() == path.read_bytes(), path


def test_the_wheel_carries_every_scaffold_file():
    """pyproject's package-data globs (expanded the way setuptools does, recursively)
    take in each scaffold file, so an installed package can init."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    package = REPO / "src" / "avatar_batch"
    shipped = {
        Path(found).relative_to(package).as_posix()
        for pattern in config["tool"]["setuptools"]["package-data"]["avatar_batch"]
        for found in glob.glob(str(package / pattern), recursive=True)
    }
    rels = [f"scaffold/{rel}" for rel in scaffold_files()]
    assert len(rels) == 7 and not set(rels) - shipped, sorted(set(rels) - shipped)
