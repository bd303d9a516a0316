"""A valid catalogue becomes the records later stages read."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from avatar_batch.core.records import Catalogue, CatalogueDefaults, Entry, Persona


def test_valid_catalogue_becomes_records(project):
    catalogue = project.load(project.base())
    assert isinstance(catalogue, Catalogue)
    assert catalogue.path == (project.root / "catalogue.yaml").resolve()
    assert catalogue.version == 1
    assert catalogue.library_dir == (project.root / "out" / "lib").resolve()
    assert catalogue.defaults == CatalogueDefaults(
        preset="standard", renderer="still", languages=("en", "zh"), persona="doc"
    )
    assert catalogue.warnings == ()
    persona = catalogue.personas["doc"]
    assert isinstance(persona, Persona)
    assert persona.image_path == (project.root / "doc.png").resolve()
    assert persona.prompt_template.startswith("Identity: a doctor.")
    assert persona.voices == {"en": "en-us", "zh": "cmn"}
    assert persona.rate_wpm == 160
    first = catalogue.entries[0]
    assert isinstance(first, Entry)
    assert first.id == "chest-pain" and first.persona == "doc" and first.department == "cardiology"
    assert first.languages == ("en", "zh")
    assert first.answer["zh"] == "请立即拨打急救电话。"
    assert first.audio == {} and first.preset is None and first.size is None and first.fallback_to_still
    lines = catalogue.path.read_text(encoding="utf-8").splitlines()
    assert lines[first.line - 1].strip() == "- id: chest-pain"


def test_records_are_frozen(project):
    catalogue = project.load(project.base())
    try:
        catalogue.entries[0].id = "other"  # type: ignore[misc]
    except dataclasses.FrozenInstanceError:
        return
    raise AssertionError("Entry must be frozen")


def test_plain_string_texts_use_the_first_default_language(project):
    def edit(d):
        d["defaults"]["languages"] = ["en"]
        d["personas"]["doc"]["voices"] = {"en": "en-us"}
        for entry in d["entries"]:
            entry["question"] = "  Where?\n"
            entry["answer"] = "Here.\n"

    entry = project.load(project.edited(edit)).entries[0]
    assert entry.languages == ("en",)
    assert entry.question == {"en": "Where?"}  # stripped
    assert entry.answer == {"en": "Here."}


def test_languages_follow_the_answer(project):
    def edit(d):
        d["entries"][0]["answer"].pop("zh")

    catalogue = project.load(project.edited(edit))
    entry = catalogue.entries[0]
    assert entry.languages == ("en",)
    assert entry.question == {"en": "Where do I go?"}  # the unused zh question is dropped
    assert any("question in 'zh' has no answer" in w for w in catalogue.warnings)


def test_overrides_and_recordings(project):
    def edit(d):
        d["entries"][0].update(preset="quick", size="400x240", fallback_to_still=False, audio={"en": "doc-en.wav"})

    entry = project.load(project.edited(edit)).entries[0]
    assert entry.preset == "quick"
    assert entry.size == "400*240"  # normalised to the form every stage reads
    assert entry.fallback_to_still is False
    assert entry.audio == {"en": (project.root / "doc-en.wav").resolve()}


def test_persona_per_entry_and_rate(project):
    def edit(d):
        voices = {"en": "en-gb", "zh": "cmn"}
        d["personas"]["nurse"] = {"image": "doc.png", "prompt": "doc.txt", "voices": voices, "rate_wpm": 170}
        d["entries"][1]["persona"] = "nurse"

    catalogue = project.load(project.edited(edit))
    assert [e.persona for e in catalogue.entries] == ["doc", "nurse"]
    assert catalogue.personas["nurse"].rate_wpm == 170


def test_small_portrait_is_a_warning_not_an_error(project):
    from PIL import Image

    Image.new("RGB", (320, 400)).save(project.root / "small.png")
    catalogue = project.load(project.edited(lambda d: d["personas"]["doc"].update(image="small.png")))
    (warning,) = catalogue.warnings
    assert ": warning field 'personas.doc.image': portrait is 320×400 px, under 512×512" in warning
    assert "catalogue.yaml:" in warning


def test_unused_persona_is_a_warning(project):
    def edit(d):
        d["personas"]["spare"] = dict(d["personas"]["doc"])

    catalogue = project.load(project.edited(edit))
    assert len(catalogue.warnings) == 1
    assert "persona 'spare' is not used" in catalogue.warnings[0]


def test_installed_voices_none_skips_the_voice_check(project):
    data = project.edited(lambda d: d["personas"]["doc"]["voices"].update(zh="no-such-voice"))
    assert project.load(data).personas["doc"].voices["zh"] == "no-such-voice"


def test_symlink_inside_the_root_is_followed(project):
    (project.root / "art").mkdir()
    (project.root / "art" / "face.png").symlink_to(project.root / "doc.png")
    catalogue = project.load(project.edited(lambda d: d["personas"]["doc"].update(image="art/face.png")))
    assert catalogue.personas["doc"].image_path == (project.root / "doc.png").resolve()


def test_yaml_anchors_and_merge_keys_work(project):
    text = (project.write(project.base()).read_text()).replace(
        "  doc:\n    image: doc.png\n", "  doc: &doc\n    image: doc.png\n", 1
    )
    text = text.replace("entries:", "  twin:\n    <<: *doc\n    rate_wpm: 150\nentries:", 1)
    text = text.replace("  department: fever clinic", "  department: fever clinic\n  persona: twin", 1)
    catalogue = project.load(text)
    assert catalogue.personas["twin"].rate_wpm == 150
    assert catalogue.personas["twin"].voices == catalogue.personas["doc"].voices


def test_utf8_bom_is_accepted(project):
    path: Path = project.write(project.base())
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    from avatar_batch.catalogue import load_catalogue

    assert load_catalogue(path).version == 1
