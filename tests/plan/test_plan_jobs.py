"""build_jobs: one job per (entry x language), ids that change exactly when
the video would, `only`, and loud errors for broken inputs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from avatar_batch.core.errors import CatalogueError, InputFileError, UsageError
from avatar_batch.core.records import CatalogueDefaults, RenderSettings
from avatar_batch.plan import build_jobs, ids
from tests.plan.plan_fixtures import make_catalogue, make_entry, render_prompt


def ids_of(catalogue, settings=None, model="liveavatar-v1", prompt=render_prompt, **kwargs) -> list[str]:
    jobs = build_jobs(catalogue, settings or RenderSettings(), model, prompt, **kwargs)
    return [job.job_id for job in jobs]


def first_en_id(catalogue, **kwargs) -> str:
    return ids_of(catalogue, **kwargs)[0]


def test_one_job_per_entry_and_language_in_catalogue_order(tmp_path: Path):
    catalogue = make_catalogue(tmp_path)
    jobs = build_jobs(catalogue, RenderSettings(), "m", render_prompt)
    assert [job.key for job in jobs] == [("hours", "en"), ("hours", "zh"), ("parking", "en"), ("parking", "zh")]
    assert len({job.job_id for job in jobs}) == 4
    en = jobs[0]
    assert en.question == "Question hours?" and en.answer == "Answer to hours."
    assert en.image_path == catalogue.root / "assets" / "ana.png"
    assert en.voice.voice == "en-us" and en.voice.rate_wpm == 160
    assert en.voice.loudness_lufs == catalogue.defaults.loudness_lufs
    assert en.prompt == "A friendly clerk of Front desk talks to the camera."
    assert jobs[1].voice.voice == "cmn"


def test_ids_are_stable_across_calls(tmp_path: Path):
    catalogue = make_catalogue(tmp_path)
    assert ids_of(catalogue) == ids_of(catalogue)


def test_golden_id_for_a_fixed_catalogue(tmp_path: Path):
    # Same inputs on any machine and any day -> the same id (paths are not hashed).
    assert first_en_id(make_catalogue(tmp_path)) == first_en_id(make_catalogue(tmp_path / "elsewhere"))
    assert first_en_id(make_catalogue(tmp_path)) == "5fc22460631f6a36"


def test_placement_settings_keep_existing_ids_and_formats_change_them(tmp_path: Path):
    # Libraries rendered before offload, budgets and storage formats existed keep their ids.
    catalogue = make_catalogue(tmp_path)
    placed = RenderSettings(offload="blocks", gpu_memory_gib=24.0, weight_format="bf16", kv_format="bf16")
    assert first_en_id(catalogue, settings=placed) == "5fc22460631f6a36"
    assert first_en_id(catalogue, settings=RenderSettings(kv_format="fp8")) != "5fc22460631f6a36"
    assert first_en_id(catalogue, settings=RenderSettings(weight_format="int8")) != "5fc22460631f6a36"


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda e: replace(e, question={"en": "Other?", "zh": "别的？"}), id="question"),
        pytest.param(lambda e: replace(e, department="Billing"), id="department-not-in-prompt"),
        pytest.param(lambda e: replace(e, line=99), id="line"),
    ],
)
def test_id_unchanged_when_labels_change(tmp_path: Path, change):
    base = make_catalogue(tmp_path, (make_entry("hours"),))
    changed = replace(base, entries=(change(base.entries[0]),))
    # The prompt must not mention the department for this check to isolate the label.
    neutral = lambda persona, entry, language: "fixed prompt"  # noqa: E731
    assert ids_of(changed, prompt=neutral) == ids_of(base, prompt=neutral)


def test_id_unchanged_by_settings_that_do_not_change_pixels(tmp_path: Path):
    catalogue = make_catalogue(tmp_path)
    base = first_en_id(catalogue)
    assert first_en_id(catalogue, settings=RenderSettings(offload="model", weights_dir="/mnt/w")) == base


@pytest.mark.parametrize(
    "field, value",
    [
        ("seed", 7),
        ("size", "704*384"),
        ("sample_steps", 3),
        ("frames_per_clip", 24),
        ("num_clip", 2),
        ("precision", "fp8"),
        ("renderer", "liveavatar"),
        ("preset", "high"),
        ("sink_refresh", True),
    ],
)
def test_id_changes_with_each_hashed_setting(tmp_path: Path, field, value):
    catalogue = make_catalogue(tmp_path)
    assert first_en_id(catalogue, settings=replace(RenderSettings(), **{field: value})) != first_en_id(catalogue)


def test_id_changes_with_answer_model_and_prompt(tmp_path: Path):
    base = make_catalogue(tmp_path, (make_entry("hours"),))
    reference = first_en_id(base)
    new_answer = replace(base, entries=(replace(base.entries[0], answer={"en": "New.", "zh": "新。"}),))
    assert first_en_id(new_answer) != reference
    assert first_en_id(base, model="liveavatar-v2") != reference
    assert first_en_id(base, prompt=lambda p, e, lang: "another prompt") != reference


def test_id_changes_with_voice_settings(tmp_path: Path):
    base = make_catalogue(tmp_path, (make_entry("hours"),))
    reference = first_en_id(base)
    ana = base.personas["ana"]
    other_voice = replace(base, personas={**base.personas, "ana": replace(ana, voices={**ana.voices, "en": "en-gb"})})
    slower = replace(base, personas={**base.personas, "ana": replace(ana, rate_wpm=120)})
    louder = replace(base, defaults=CatalogueDefaults(loudness_lufs=-14.0))
    assert len({reference, first_en_id(other_voice), first_en_id(slower), first_en_id(louder)}) == 4


def test_id_changes_with_image_bytes_not_path(tmp_path: Path):
    base = make_catalogue(tmp_path, (make_entry("hours"),))
    reference = first_en_id(base)
    copy = tmp_path / "assets" / "copy.png"
    copy.write_bytes((tmp_path / "assets" / "ana.png").read_bytes())
    ana = base.personas["ana"]
    moved = replace(base, personas={**base.personas, "ana": replace(ana, image_path=copy)})
    assert first_en_id(moved) == reference
    (tmp_path / "assets" / "ana.png").write_bytes(b"a new portrait")
    assert first_en_id(base) != reference


def test_id_changes_with_recording_bytes(tmp_path: Path):
    recording = tmp_path / "hours-en.wav"
    recording.write_bytes(b"take one")
    entry = make_entry("hours", audio={"en": recording})
    base = make_catalogue(tmp_path, (entry,))
    jobs = build_jobs(base, RenderSettings(), "m", render_prompt)
    assert jobs[0].audio_path == recording and jobs[1].audio_path is None
    without = first_en_id(make_catalogue(tmp_path, (make_entry("hours"),)), model="m")
    assert jobs[0].job_id != without
    recording.write_bytes(b"take two, longer")
    assert first_en_id(base, model="m") != jobs[0].job_id


def test_entry_id_is_hashed_so_equal_answers_stay_two_rows(tmp_path: Path):
    same_text = {"en": "Ask at the desk.", "zh": "请到前台询问。"}
    catalogue = make_catalogue(tmp_path, (make_entry("a", answer=same_text), make_entry("b", answer=same_text)))
    assert len(set(ids_of(catalogue))) == 4


def test_entry_preset_applies_unless_fixed_on_the_command_line(tmp_path: Path):
    catalogue = make_catalogue(tmp_path, (make_entry("hours", preset="quick"),))
    jobs = build_jobs(catalogue, RenderSettings(), "m", render_prompt)
    assert jobs[0].settings.size == "384*256" and jobs[0].settings.sample_steps == 3
    fixed = build_jobs(catalogue, RenderSettings(), "m", render_prompt, cli_fixed=frozenset({"preset"}))
    assert fixed[0].settings.size == "688*368"


def test_only_restricts_entries(tmp_path: Path):
    catalogue = make_catalogue(tmp_path)
    jobs = build_jobs(catalogue, RenderSettings(), "m", render_prompt, only=["parking"])
    assert {job.entry_id for job in jobs} == {"parking"}
    assert [job.job_id for job in jobs] == ids_of(catalogue, model="m")[2:]


def test_only_with_an_unknown_entry_is_a_usage_error(tmp_path: Path):
    catalogue = make_catalogue(tmp_path)
    with pytest.raises(UsageError, match="parkinq"):
        build_jobs(catalogue, RenderSettings(), "m", render_prompt, only=["parking", "parkinq"])


def test_missing_image_names_entry_and_path(tmp_path: Path):
    catalogue = make_catalogue(tmp_path)
    (catalogue.root / "assets" / "ana.png").unlink()
    with pytest.raises(InputFileError, match=r"entry 'hours'.*ana\.png"):
        build_jobs(catalogue, RenderSettings(), "m", render_prompt)


def test_missing_voice_and_answer_are_reported_together(tmp_path: Path):
    entry = make_entry("hours", languages=("en", "fr"), answer={"en": "Yes."})
    catalogue = make_catalogue(tmp_path, (entry,))
    with pytest.raises(CatalogueError) as caught:
        build_jobs(catalogue, RenderSettings(), "m", render_prompt)
    fields = sorted(problem.field for problem in caught.value.problems)
    assert fields == ["answer.fr", "languages"]


def test_shared_images_are_hashed_once_per_file(tmp_path: Path, monkeypatch):
    calls: list[Path] = []
    real = ids._hash_file
    monkeypatch.setattr(ids, "_hash_file", lambda path: calls.append(path) or real(path))
    entries = tuple(make_entry(f"e{n}", persona="ana" if n % 2 else "ben") for n in range(200))
    build_jobs(make_catalogue(tmp_path, entries), RenderSettings(), "m", render_prompt)
    assert len(calls) == 2
