"""The example content shipped in questions/, prompts/ and assets/."""

from __future__ import annotations

import ast
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
from PIL import Image

from avatar_batch.catalogue import load_catalogue, render_prompt
from avatar_batch.core.proc import run

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden" / "triage_summary.json"
# the ids `espeak-ng --voices` lists for the voices the examples use
EXAMPLE_VOICES = ("en-us", "en-gb-x-rp", "cmn")


def summary(catalogue) -> dict:
    return {
        "library": catalogue.library_dir.relative_to(REPO).as_posix(),
        "defaults": {"preset": catalogue.defaults.preset, "languages": list(catalogue.defaults.languages)},
        "personas": {pid: dict(p.voices) for pid, p in catalogue.personas.items()},
        "entries": [[e.id, e.persona, e.department, list(e.languages)] for e in catalogue.entries],
    }


def test_triage_matches_the_golden_summary():
    catalogue = load_catalogue(REPO / "questions" / "triage.yaml")
    assert catalogue.warnings == ()
    assert summary(catalogue) == json.loads(GOLDEN.read_text(encoding="utf-8"))


def test_triage_content_rules():
    catalogue = load_catalogue(REPO / "questions" / "triage.yaml", installed_voices=EXAMPLE_VOICES)
    assert len(catalogue.entries) >= 12
    for entry in catalogue.entries:
        assert entry.languages == ("en", "zh")
        assert len(entry.answer["en"].split()) <= 25, entry.id  # keeps example renders short
        assert 1 <= entry.answer["en"].count(".") <= 3, entry.id
        assert any("\u4e00" <= ch <= "\u9fff" for ch in entry.question["zh"] + entry.answer["zh"]), entry.id
    emergency = {e.id: e for e in catalogue.entries}["chest-pain"]
    assert "emergency services now" in emergency.answer["en"]


def test_smoke_catalogue():
    catalogue = load_catalogue(REPO / "questions" / "smoke.yaml", installed_voices=EXAMPLE_VOICES)
    assert catalogue.warnings == ()
    assert catalogue.defaults.preset == "quick"
    assert catalogue.library_dir == REPO / "output" / "smoke"
    assert [len(e.answer["en"].split()) for e in catalogue.entries] == [5, 5]
    assert all(e.languages == ("en",) for e in catalogue.entries)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_example_voices_exist_in_espeak():
    listed = run(["espeak-ng", "--voices"], timeout_s=30).stdout.decode()
    voice_ids = {line.split()[1] for line in listed.splitlines()[1:] if len(line.split()) > 1}
    for path in (REPO / "questions").glob("*.yaml"):
        for persona in load_catalogue(path).personas.values():
            assert set(persona.voices.values()) <= voice_ids, (path.name, persona.id)


@pytest.mark.parametrize("name", ["doctor.txt", "nurse.txt"])
def test_prompt_templates_have_five_labelled_parts(name):
    text = (REPO / "prompts" / name).read_text(encoding="utf-8")
    labels = [line.split(":", 1)[0] for line in text.splitlines() if line.strip()]
    assert labels == ["Identity", "Scene", "Expression", "Action", "Style"]
    scene = next(line for line in text.splitlines() if line.startswith("Scene:"))
    assert "{department}" in scene


def test_prompts_render_for_every_entry():
    catalogue = load_catalogue(REPO / "questions" / "triage.yaml")
    for entry in catalogue.entries:
        prompt = render_prompt(catalogue.personas[entry.persona], entry, "en")
        assert entry.department in prompt and entry.question["en"] in prompt and "English" in prompt


@pytest.mark.parametrize("name", ["dr_chen.png", "nurse_li.png"])
def test_portraits(name):
    path = REPO / "assets" / name
    assert path.stat().st_size < 200 * 1024
    with Image.open(path) as image:
        assert image.size == (768, 768)
        rgb = image.convert("RGB")
        face = rgb.getpixel((384, 330))  # the face sits centred, in the upper middle
        corner = rgb.getpixel((10, 10))
    assert face[0] > face[2] + 40, "skin tone expected at the face position"
    assert abs(corner[0] - corner[2]) < 40, "plain wall expected in the corner"


def test_portrait_script_draws_a_centred_face():
    spec = importlib.util.spec_from_file_location("draw_personas", REPO / "tools" / "draw_personas.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    for look in module.LOOKS:
        image = module.draw_portrait(look, 128)
        assert image.size == (128, 128)
        r, g, b = image.getpixel((64, 56))
        assert abs(r - look.skin[0]) < 30 and abs(b - look.skin[2]) < 30, look.name


def test_catalogue_imports_only_core_and_itself():
    package = REPO / "src" / "avatar_batch" / "catalogue"
    for source in package.glob("*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), f"{source.name} needs a module docstring"
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                if name.startswith("avatar_batch"):
                    assert name.startswith(("avatar_batch.core", "avatar_batch.catalogue")), (source.name, name)
                assert name.split(".")[0] not in ("torch", "diffusers", "transformers"), (source.name, name)
