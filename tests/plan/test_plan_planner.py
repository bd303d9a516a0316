"""make_plan: render / skip / retire decisions, force, `only`, and the
run-time estimate."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from avatar_batch.core.records import LibraryItem, RenderSettings
from avatar_batch.plan import Plan, build_jobs, estimate_speech_s, make_plan, wav_duration_s
from tests.plan.plan_fixtures import make_catalogue, make_entry, render_prompt


def row(job, status="completed", **changes) -> LibraryItem:
    fields = dict(
        job_id=job.job_id,
        entry_id=job.entry_id,
        language=job.language,
        persona=job.persona,
        department=job.department,
        question=job.question,
        answer=job.answer,
        status=status,
    )
    fields.update(changes)
    return LibraryItem(**fields)


def always(item: LibraryItem) -> bool:
    return True


@pytest.fixture
def jobs(tmp_path: Path):
    return build_jobs(make_catalogue(tmp_path), RenderSettings(), "m", render_prompt)


def test_empty_library_renders_everything(jobs):
    plan = make_plan(jobs, {}, always)
    assert plan.to_render == tuple(jobs) and plan.to_skip == () and plan.to_retire == ()
    assert plan.pending


def test_done_and_verified_rows_are_skipped_others_render(jobs):
    items = {
        jobs[0].job_id: row(jobs[0], "completed"),
        jobs[1].job_id: row(jobs[1], "fallback"),
        jobs[2].job_id: row(jobs[2], "failed", failure="out of memory"),
        jobs[3].job_id: row(jobs[3], "completed"),
    }
    broken = {jobs[3].job_id}
    plan = make_plan(jobs, items, lambda item: item.job_id not in broken)
    assert plan.to_skip == (jobs[0], jobs[1])
    assert plan.to_render == (jobs[2], jobs[3])  # failed retried; files that do not check out re-rendered


def test_a_retired_row_with_the_same_id_is_rendered_again(jobs):
    plan = make_plan(jobs, {jobs[0].job_id: row(jobs[0], "retired")}, always)
    assert jobs[0] in plan.to_render and plan.to_retire == ()


def test_verified_is_not_asked_about_rows_that_are_not_done(jobs):
    asked: list[str] = []
    make_plan(jobs, {jobs[0].job_id: row(jobs[0], "failed")}, lambda item: asked.append(item.job_id) or True)
    assert asked == []


def test_force_renders_everything(jobs):
    items = {job.job_id: row(job) for job in jobs}
    plan = make_plan(jobs, items, always, force=True)
    assert plan.to_render == tuple(jobs) and plan.to_skip == ()


def test_an_old_version_of_a_key_is_superseded_not_retired(jobs):
    old = row(jobs[0], job_id="0" * 16, answer="old answer")
    plan = make_plan(jobs, {old.job_id: old}, always)
    assert jobs[0] in plan.to_render and plan.to_retire == ()


def test_rows_whose_key_left_the_catalogue_are_retired_once(jobs):
    gone = row(jobs[0], job_id="1" * 16, entry_id="closed-desk")
    gone_failed = row(jobs[0], "failed", job_id="2" * 16, entry_id="closed-desk", language="zh")
    already = row(jobs[0], "retired", job_id="3" * 16, entry_id="older")
    dropped_language = row(jobs[0], job_id="4" * 16, language="fr")
    items = {item.job_id: item for item in (gone, gone_failed, already, dropped_language)}
    plan = make_plan(jobs, items, always)
    assert plan.to_retire == (gone, gone_failed, dropped_language)


def test_restricted_jobs_retire_nothing(tmp_path: Path):
    catalogue = make_catalogue(tmp_path)
    only = build_jobs(catalogue, RenderSettings(), "m", render_prompt, only=["hours"])
    every = build_jobs(catalogue, RenderSettings(), "m", render_prompt)
    items = {job.job_id: row(job) for job in every}
    plan = make_plan(only, items, always, retire_missing=False)
    assert plan.to_retire == () and plan.to_skip == tuple(only)
    assert make_plan(only, items, always).to_retire  # the reason the flag exists


def test_plan_is_frozen(jobs):
    plan = make_plan(jobs, {}, always)
    assert isinstance(plan, Plan)
    with pytest.raises(AttributeError):
        plan.to_render = ()  # type: ignore[misc]


@pytest.mark.parametrize(
    "text, language, expected_s",
    [
        ("", "en", 0.0),
        ("a" * 14, "en", 1.0),
        ("Open 9 to 5", "en", 11 / 14),
        ("您好" * 9, "zh", 4.0),
        ("请 用 WiFi", "zh", 2 / 4.5 + 4 / 14),  # spaces are not spoken in Chinese text
        ("こんにちは", "ja", 5 / 4.5),
        ("Hotel 酒店", "en", 6 / 14 + 2 / 4.5),
    ],
)
def test_estimate_speech_s(text, language, expected_s):
    assert estimate_speech_s(text, language) == pytest.approx(expected_s)


def write_wav(path: Path, duration_s: float, rate_hz: int = 16_000) -> Path:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate_hz)
        handle.writeframes(b"\0\0" * int(duration_s * rate_hz))
    return path


def test_estimate_uses_recording_duration_when_known(tmp_path: Path):
    recording = write_wav(tmp_path / "hours-en.wav", 3.0)
    catalogue = make_catalogue(tmp_path, (make_entry("hours", audio={"en": recording}, languages=("en",)),))
    jobs = build_jobs(catalogue, RenderSettings(), "m", render_prompt)
    assert make_plan(jobs, {}, always).estimated_video_s == pytest.approx(3.0)
    text_only = make_plan(jobs, {}, always, audio_duration_s=lambda path: None)
    assert text_only.estimated_video_s == pytest.approx(round(len(jobs[0].answer) / 14, 1))


def test_estimate_counts_only_jobs_to_render(jobs):
    items = {jobs[0].job_id: row(jobs[0])}
    expected = sum(estimate_speech_s(job.answer, job.language) for job in jobs[1:])
    assert make_plan(jobs, items, always).estimated_video_s == pytest.approx(round(expected, 1))


def test_wav_duration_s(tmp_path: Path):
    assert wav_duration_s(write_wav(tmp_path / "a.wav", 1.5)) == pytest.approx(1.5)
    (tmp_path / "b.mp3").write_bytes(b"ID3 not a wav")
    assert wav_duration_s(tmp_path / "b.mp3") is None
    assert wav_duration_s(tmp_path / "missing.wav") is None
