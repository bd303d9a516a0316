"""Every kind of bad catalogue is refused with a located, actionable problem."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from avatar_batch.catalogue import load_catalogue
from avatar_batch.core.errors import CatalogueError, InputFileError


def line_of(path: Path, needle: str, nth: int = 1) -> int:
    """1-based line of the nth line containing `needle`."""
    hits = [number for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if needle in text]
    return hits[nth - 1]


def rendered(problems) -> str:
    return "\n".join(p.render() for p in problems)


# --- the file as a whole ------------------------------------------------------


def test_malformed_yaml_names_file_and_line(project):
    text = "version: 1\nlibrary: out\npersonas: {doc: [1, 2}\nentries: []\n"
    problem = project.error(text)
    assert problem.file.endswith("catalogue.yaml")
    assert problem.line == 3
    assert "YAML syntax error" in problem.message
    assert problem.render().startswith(f"{problem.file}:3: error")


def test_top_level_must_be_a_mapping(project):
    problem = project.error("- id: a\n- id: b\n")
    assert "top level must be a mapping" in problem.message
    assert problem.value == "a list"


def test_empty_file(project):
    assert "empty" in project.error("").message


def test_not_utf8(project):
    path = project.root / "latin1.yaml"
    path.write_bytes("version: 1\nlibrary: caf\xe9\n".encode("latin-1"))
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path)
    assert "not UTF-8" in caught.value.problems[0].message
    assert caught.value.exit_code == 65


def test_missing_catalogue_file_is_an_input_error(project):
    with pytest.raises(InputFileError) as caught:
        load_catalogue(project.root / "nope.yaml")
    assert caught.value.exit_code == 66
    assert "nope.yaml" in str(caught.value)


def test_unsupported_version(project):
    path = project.write(project.edited(lambda d: d.update(version=2)))
    problem = project.error(path.read_text())
    assert problem.field == "version"
    assert "unsupported catalogue version 2" in problem.message
    assert "version: 1" in problem.fix
    assert problem.line == line_of(path, "version:")


def test_alias_bomb_is_refused(project):
    rows = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    rows += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]
    problem = project.error("\n".join(rows) + "\n")
    assert "aliases" in problem.message


def test_duplicate_yaml_key_names_both_lines(project):
    text = "version: 1\nlibrary: out\nversion: 1\n"
    problems = project.problems(text)
    dup = next(p for p in problems if "written twice" in p.message)
    assert "lines 1 and 3" in dup.message
    assert dup.line == 3


# --- unknown and missing keys -------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "field", "suggestion"),
    [
        (lambda d: d.update(entires=d.pop("entries")), "entires", "entries"),
        (lambda d: d["defaults"].update(langauges=d["defaults"].pop("languages")), "defaults.langauges", "languages"),
        (lambda d: d["personas"]["doc"].update(imag="doc.png"), "personas.doc.imag", "image"),
        (lambda d: d["entries"][1].update(anwser="x"), "anwser", "answer"),
    ],
    ids=["top", "defaults", "persona", "entry"],
)
def test_unknown_key_suggests_the_closest(project, edit, field, suggestion):
    path = project.write(project.edited(edit))
    problems = project.problems(path.read_text())
    problem = next(p for p in problems if p.field == field)
    assert f"unknown key '{field.split('.')[-1]}'" in problem.message
    assert problem.fix == f"did you mean '{suggestion}'?"
    assert problem.line == line_of(path, field.split(".")[-1] + ":")
    if field == "anwser":
        assert problem.entry == "fever"


def test_unknown_key_without_a_close_match_lists_known_keys(project):
    problem = project.error(project.edited(lambda d: d["entries"][0].update(zzz=1)))
    assert "department" in problem.fix and "answer" in problem.fix


def test_missing_answer(project):
    path = project.write(project.edited(lambda d: d["entries"][1].pop("answer")))
    problem = project.error(path.read_text())
    assert problem.entry == "fever"
    assert problem.field == "answer"
    assert "required key 'answer' is missing" in problem.message
    assert problem.line == line_of(path, "id: fever")
    assert f"catalogue.yaml:{problem.line}: error entry 'fever' field 'answer'" in problem.render()


def test_missing_library(project):
    problem = project.error(project.edited(lambda d: d.pop("library")))
    assert problem.field == "library"
    assert "required key 'library' is missing" in problem.message


def test_wrong_type_names_the_value(project):
    problem = project.error(project.edited(lambda d: d["entries"][0].update(answer=["a", "b"])))
    assert problem.entry == "chest-pain"
    assert problem.field == "answer"
    assert "mapping of language code to text" in problem.message


def test_entry_that_is_not_a_mapping(project):
    problem = project.error(project.edited(lambda d: d["entries"].append(42)))
    assert problem.entry == "#3"
    assert "mapping" in problem.message


# --- texts, ids, references -----------------------------------------------------


@pytest.mark.parametrize("blank", ["", "   ", "\n\t"])
def test_empty_or_whitespace_text(project, blank):
    problem = project.error(project.edited(lambda d: d["entries"][0]["answer"].update(zh=blank)))
    assert problem.entry == "chest-pain"
    assert problem.field == "answer.zh"
    assert "answer text is empty" in problem.message


def test_empty_department(project):
    problem = project.error(project.edited(lambda d: d["entries"][1].update(department=" ")))
    assert (problem.entry, problem.field) == ("fever", "department")
    assert "empty" in problem.message


def test_duplicate_entry_ids_name_both_lines(project):
    path = project.write(project.edited(lambda d: d["entries"][1].update(id="chest-pain")))
    problem = project.error(path.read_text())
    first, second = line_of(path, "id: chest-pain", 1), line_of(path, "id: chest-pain", 2)
    assert f"lines {first} and {second}" in problem.message
    assert problem.entry == "chest-pain" and problem.field == "id"
    assert problem.line == second


def test_entry_id_must_be_file_name_safe(project):
    problem = project.error(project.edited(lambda d: d["entries"][0].update(id="Chest Pain")))
    assert problem.field == "id"
    assert problem.value == "Chest Pain"
    assert "lower-case" in problem.fix


def test_unknown_persona(project):
    problem = project.error(project.edited(lambda d: d["entries"][1].update(persona="dco")))
    assert (problem.entry, problem.field) == ("fever", "persona")
    assert "unknown persona 'dco'" in problem.message
    assert problem.fix == "did you mean 'doc'?"


def test_unknown_default_persona_is_reported_once(project):
    problem = project.error(project.edited(lambda d: d["defaults"].update(persona="nobody")))
    assert problem.field == "defaults.persona"
    assert "unknown persona 'nobody'" in problem.message


def test_no_persona_at_all(project):
    problems = project.problems(project.edited(lambda d: d["defaults"].pop("persona")))
    assert {p.entry for p in problems if p.severity == "error"} == {"chest-pain", "fever"}
    assert all("has no persona" in p.message for p in problems if p.severity == "error")


@pytest.mark.parametrize("where", ["entry", "defaults"])
def test_unknown_preset(project, where):
    def edit(d):
        (d["entries"][0] if where == "entry" else d["defaults"]).update(preset="standart")

    problem = project.error(project.edited(edit))
    assert "unknown preset 'standart'" in problem.message
    assert problem.fix == "did you mean 'standard'?"
    assert problem.field == ("preset" if where == "entry" else "defaults.preset")


def test_unknown_renderer(project):
    problem = project.error(project.edited(lambda d: d["defaults"].update(renderer="liveavatr")))
    assert problem.fix == "did you mean 'liveavatar'?"


@pytest.mark.parametrize("size", ["big", "384x", "10*10", "0*0"])
def test_bad_size(project, size):
    problem = project.error(project.edited(lambda d: d["entries"][0].update(size=size)))
    assert (problem.entry, problem.field, problem.value) == ("chest-pain", "size", size)
    assert "WIDTH*HEIGHT" in problem.fix


def test_sink_refresh_must_be_true_or_false(project):
    problem = project.error(project.edited(lambda d: d["entries"][0].update(sink_refresh="sometimes")))
    assert (problem.entry, problem.field, problem.value) == ("chest-pain", "sink_refresh", "sometimes")


def test_sink_refresh_reaches_the_entry(project):
    catalogue = project.load(project.edited(lambda d: d["entries"][0].update(sink_refresh=True)))
    assert [e.sink_refresh for e in catalogue.entries] == [True, None]


def test_question_missing_for_an_answer_language(project):
    problem = project.error(project.edited(lambda d: d["entries"][0]["question"].pop("zh")))
    assert (problem.entry, problem.field) == ("chest-pain", "question")
    assert "no question in 'zh'" in problem.message


def test_language_without_voice_in_persona(project):
    problems = project.problems(project.edited(lambda d: d["personas"]["doc"]["voices"].pop("zh")))
    errors = [p for p in problems if p.severity == "error"]
    assert {(p.entry, p.field) for p in errors} == {("chest-pain", "answer.zh"), ("fever", "answer.zh")}
    assert all("has no voice in persona 'doc'" in p.message and "voices.zh" in p.fix for p in errors)


def test_bad_language_code(project):
    def edit(d):
        d["entries"][0]["question"]["EN_us"] = d["entries"][0]["question"].pop("en")
        d["entries"][0]["answer"]["EN_us"] = d["entries"][0]["answer"].pop("en")

    problems = project.problems(project.edited(edit))
    assert any(p.field == "answer.EN_us" and "not a language code" in p.message for p in problems)


def test_voice_not_installed(project):
    problem = project.error(project.base(), installed_voices=["en-us"])
    assert problem.field == "personas.doc.voices.zh"
    assert "voice 'cmn' is not installed" in problem.message
    assert problem.fix == "install espeak-ng voice cmn / run `avatar-batch doctor`"


def test_installed_voices_match_case_and_variants(project):
    data = project.edited(lambda d: d["personas"]["doc"]["voices"].update(en="en-US+f3"))
    assert project.load(data, installed_voices=["en-us", "cmn"]).personas["doc"].voices["en"] == "en-US+f3"


def test_voice_id_cannot_look_like_an_option(project):
    problem = project.error(project.edited(lambda d: d["personas"]["doc"]["voices"].update(en="-w /tmp/x")))
    assert "not a voice id" in problem.message


def test_rate_out_of_range(project):
    problem = project.error(project.edited(lambda d: d["personas"]["doc"].update(rate_wpm=5)))
    assert problem.field == "personas.doc.rate_wpm"
    assert "80" in problem.message


# --- files ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "field", "what"),
    [
        (lambda d: d["personas"]["doc"].update(image="missing.png"), "personas.doc.image", "portrait image not found"),
        (lambda d: d["personas"]["doc"].update(prompt="missing.txt"), "personas.doc.prompt", "template not found"),
        (lambda d: d["entries"][0].update(audio={"en": "missing.wav"}), "audio.en", "recording not found"),
    ],
    ids=["image", "prompt", "audio"],
)
def test_missing_file_names_the_path(project, edit, field, what):
    problem = project.error(project.edited(edit))
    assert problem.field == field
    assert what in problem.message
    assert str(project.root / "missing") in problem.message
    assert problem.value.startswith("missing.")


def test_folder_instead_of_file(project):
    (project.root / "pics").mkdir()
    problem = project.error(project.edited(lambda d: d["personas"]["doc"].update(image="pics")))
    assert "is not a file" in problem.message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(project):
    (project.root / "doc.txt").chmod(0)
    problem = project.error(project.base())
    assert "cannot be read" in problem.message


def test_unreadable_file_when_permissions_refuse(project, monkeypatch):
    from avatar_batch.catalogue import checks

    real_open = open

    def refusing_open(path, *args, **kwargs):
        if Path(path).name == "doc.txt":
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(checks, "open", refusing_open, raising=False)
    problem = project.error(project.base())
    assert problem.field == "personas.doc.prompt"
    assert "prompt template cannot be read: Permission denied" in problem.message


def test_image_not_decodable(project):
    (project.root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    problem = project.error(project.edited(lambda d: d["personas"]["doc"].update(image="broken.png")))
    assert problem.field == "personas.doc.image"
    assert "cannot be decoded" in problem.message


def test_audio_with_unsupported_extension(project):
    (project.root / "take.aiff").write_bytes(b"FORM")
    problem = project.error(project.edited(lambda d: d["entries"][0].update(audio={"en": "take.aiff"})))
    assert (problem.entry, problem.field) == ("chest-pain", "audio.en")
    assert "unsupported extension '.aiff'" in problem.message
    assert ".wav" in problem.fix


def test_audio_in_a_language_the_entry_does_not_speak(project):
    problem = project.error(project.edited(lambda d: d["entries"][0].update(audio={"fr": "doc-en.wav"})))
    assert problem.field == "audio.fr"
    assert "no 'fr' answer" in problem.message


def test_prompt_with_unknown_field(project):
    (project.root / "bad.txt").write_text("Scene: the {department} ward, {weather} outside.", encoding="utf-8")
    problem = project.error(project.edited(lambda d: d["personas"]["doc"].update(prompt="bad.txt")))
    assert problem.field == "personas.doc.prompt"
    assert "unknown field '{weather}'" in problem.message
    assert "{department}" in problem.fix


# --- paths leaving the catalogue root -------------------------------------------


def test_absolute_path_is_refused(project):
    image = str(project.root / "doc.png")
    problem = project.error(project.edited(lambda d: d["personas"]["doc"].update(image=image)))
    assert "absolute" in problem.message
    assert problem.value == image


def test_dotdot_inside_the_root_is_fine_but_escaping_it_is_refused(project):
    (project.root / "questions").mkdir()

    def edit(d):
        d["library"] = "../out"
        d["personas"]["doc"].update(image="../doc.png", prompt="../doc.txt")

    data = project.edited(edit)
    path = project.write(data, name="questions/inside.yaml")
    assert load_catalogue(path).personas["doc"].image_path == (project.root / "doc.png").resolve()
    data["personas"]["doc"]["image"] = "../../doc.png"
    path = project.write(data, name="questions/escape.yaml")
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path)
    (problem,) = caught.value.problems
    assert problem.field == "personas.doc.image"
    assert "climbs out of the catalogue root" in problem.message
    assert str(project.root) in problem.fix


def test_symlink_out_of_the_root_is_refused(project, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "face.png"
    outside.write_bytes((project.root / "doc.png").read_bytes())
    (project.root / "face.png").symlink_to(outside)
    problem = project.error(project.edited(lambda d: d["personas"]["doc"].update(image="face.png")))
    assert "symlink" in problem.message
    assert str(outside.resolve()) in problem.message


def test_library_outside_the_root_is_refused(project):
    problem = project.error(project.edited(lambda d: d.update(library="../../elsewhere")))
    assert problem.field == "library"
    assert "climbs out" in problem.message


def test_library_that_is_a_file(project):
    problem = project.error(project.edited(lambda d: d.update(library="doc.txt")))
    assert "is a file, not a folder" in problem.message


# --- all at once -------------------------------------------------------------------


def test_every_problem_is_reported_at_once(project):
    def edit(d):
        d["version"] = 3
        d["defaults"]["preset"] = "fast"
        d["personas"]["doc"]["image"] = "missing.png"
        d["entries"][0]["answer"]["zh"] = " "
        d["entries"][0]["size"] = "huge"
        d["entries"][1].pop("department")
        d["entries"].append({"id": "fever", "department": "x", "question": "q", "answer": "a", "preset": "slow"})

    problems = project.problems(project.edited(edit))
    errors = [p for p in problems if p.severity == "error"]
    found = {(p.entry, p.field) for p in errors}
    assert found == {
        (None, "version"),
        (None, "defaults.preset"),
        (None, "personas.doc.image"),
        ("chest-pain", "answer.zh"),
        ("chest-pain", "size"),
        ("fever", "department"),
        ("fever", "preset"),
        ("fever", "id"),
    }, rendered(problems)
    lines = [p.line or 0 for p in problems]
    assert lines == sorted(lines), "problems are listed in file order"
    message = str(CatalogueError(problems))
    assert len(message.splitlines()) == len(errors)
