"""`render`, `plan` and `validate` through the CLI, with real TTS and ffmpeg
(the still renderer keeps it fast)."""

from __future__ import annotations

import json
import re
import subprocess

from typer.testing import CliRunner

from avatar_batch.cli import app
from avatar_batch.library import Library


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def probe(path):
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        check=True,
        text=True,
    )
    return json.loads(done.stdout)


def test_render_then_noop_rerun_then_change_one_entry(project):
    first = invoke("render", project.catalogue, "--plain")
    assert first.exit_code == 0, first.output
    items = project.manifest_items()
    assert sorted(i["entry_id"] for i in items) == ["smoke-pharmacy", "smoke-register"]
    for item in items:
        assert item["status"] == "completed"
        info = probe(project.library / item["video"])
        kinds = sorted(s["codec_type"] for s in info["streams"])
        assert kinds == ["audio", "video"]
        video = next(s for s in info["streams"] if s["codec_type"] == "video")
        assert video["codec_name"] == "h264" and video["pix_fmt"] == "yuv420p"
        assert abs(float(video["duration"]) - item["duration_s"]) <= 1 / 25 + 1e-6
        for key in ("poster", "captions_vtt", "captions_srt"):
            assert (project.library / item[key]).stat().st_size > 0
    assert (project.library / "index.html").exists() and (project.library / "library.sqlite").exists()

    again = invoke("render", project.catalogue, "--plain")
    assert again.exit_code == 0 and "up to date 2" in again.output
    assert project.manifest_items() == items

    data = project.data()
    data["entries"][0]["answer"] = "Please register at the front desk."
    project.write(data)
    assert invoke("plan", project.catalogue).exit_code == 2
    changed = invoke("render", project.catalogue, "--plain")
    assert changed.exit_code == 0, changed.output
    after = {i["entry_id"]: i for i in project.manifest_items()}
    before = {i["entry_id"]: i for i in items}
    assert after["smoke-register"]["job_id"] != before["smoke-register"]["job_id"]
    assert after["smoke-pharmacy"] == before["smoke-pharmacy"]
    old_folder = project.library / before["smoke-register"]["video"]
    assert not old_folder.exists()  # the superseded version is gone once the new one is in place
    assert invoke("plan", project.catalogue).exit_code == 0


def test_removed_entry_is_retired_then_pruned(project):
    assert invoke("render", project.catalogue, "--plain").exit_code == 0
    data = project.data()
    gone = data["entries"].pop()
    project.write(data)
    plan = invoke("plan", project.catalogue, "--json")
    assert plan.exit_code == 2 and json.loads(plan.output)["to_retire"]
    assert invoke("render", project.catalogue, "--plain").exit_code == 0
    rows = {i["entry_id"]: i for i in project.manifest_items()}
    assert rows[gone["id"]]["status"] == "retired"
    video = project.library / rows[gone["id"]]["video"]
    assert video.exists()
    assert invoke("library", "prune", project.library).exit_code == 0
    assert not video.exists()
    assert gone["id"] not in {i["entry_id"] for i in project.manifest_items()}


def test_bad_catalogue_renders_nothing_and_exits_65(project):
    data = project.data()
    data["entries"][0]["answr"] = data["entries"][0].pop("answer")
    project.write(data)
    result = invoke("render", project.catalogue, "--plain")
    assert result.exit_code == 65
    assert "answr" in result.output and "smoke.yaml" in result.output
    assert not project.library.exists()
    assert invoke("validate", project.catalogue).exit_code == 65


def test_validate_ok_and_plan_json(project):
    ok = invoke("validate", project.catalogue)
    assert ok.exit_code == 0 and "2 entries" in ok.output
    plan = invoke("plan", project.catalogue, "--json")
    assert plan.exit_code == 2
    assert len(json.loads(plan.output)["to_render"]) == 2


def test_second_run_exits_75_and_touches_nothing(project):
    library = Library(project.library)
    with library.lock():
        before = sorted(p.name for p in project.library.iterdir())
        result = invoke("render", project.catalogue, "--plain")
        assert result.exit_code == 75, result.output
        assert "lock" in result.output
        assert sorted(p.name for p in project.library.iterdir()) == before


def test_only_renders_the_named_entry_and_retires_nothing(project):
    result = invoke("render", project.catalogue, "--plain", "--only", "smoke-pharmacy")
    assert result.exit_code == 0, result.output
    assert [i["entry_id"] for i in project.manifest_items()] == ["smoke-pharmacy"]
    unknown = invoke("render", project.catalogue, "--plain", "--only", "nope")
    assert unknown.exit_code == 2


def test_failed_job_does_not_sink_the_batch(project, monkeypatch):
    from avatar_batch import batch

    real = batch.speech_stage.synthesize

    def flaky(job, work_dir, **kwargs):
        if job.entry_id == "smoke-register":
            raise RuntimeError("speech engine exploded")
        return real(job, work_dir, **kwargs)

    monkeypatch.setattr(batch.speech_stage, "synthesize", flaky)
    result = invoke("render", project.catalogue, "--plain")
    assert result.exit_code == 1
    rows = {i["entry_id"]: i for i in project.manifest_items()}
    assert rows["smoke-register"]["status"] == "failed"
    assert "speech engine exploded" in rows["smoke-register"]["failure"]
    assert rows["smoke-pharmacy"]["status"] == "completed"
    report = json.loads(sorted((project.library / "runs").glob("*.json"))[-1].read_text())
    assert report["failed"] == 1
    manifest = json.loads((project.library / "manifest.json").read_text())
    stamps = [manifest["generated_at"], report["started_at"], report["finished_at"]]
    stamps += [row["created_at"] for row in manifest["items"]]  # a failed row and a committed one
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", s) for s in stamps), stamps
    monkeypatch.setattr(batch.speech_stage, "synthesize", real)
    retry = invoke("render", project.catalogue, "--plain")
    assert retry.exit_code == 0
    assert {i["status"] for i in project.manifest_items()} == {"completed"}


def _option_names(command_name: str) -> set[str]:
    import typer.main

    command = typer.main.get_command(app).commands[command_name]  # type: ignore[attr-defined]
    return {name for param in command.params for name in param.opts}


def test_plan_takes_every_flag_render_takes():
    """Every render setting enters the job id, so plan must accept each one."""
    own = {"render": {"--plain"}, "plan": {"--json"}}
    assert _option_names("render") - own["render"] == _option_names("plan") - own["plan"]


def test_plan_after_an_fp8_render_of_two_clips_is_up_to_date(project):
    flags = ("--precision", "fp8", "--num-clip", "2")
    assert invoke("render", project.catalogue, "--plain", *flags).exit_code == 0
    assert invoke("plan", project.catalogue, *flags).exit_code == 0
    assert invoke("plan", project.catalogue).exit_code == 2


def test_steps_past_the_model_limit_stop_plan_and_render_before_any_job(project):
    for command in ("plan", "render"):
        result = invoke(command, project.catalogue, "--renderer", "liveavatar", "--steps", "5")
        assert result.exit_code == 2, result.output
        assert "--steps 5 is outside 1..4" in result.output
    assert not project.library.exists()


def test_sink_refresh_flag_asks_for_new_videos_only_when_on(project):
    assert invoke("render", project.catalogue, "--plain").exit_code == 0
    assert invoke("plan", project.catalogue, "--no-sink-refresh").exit_code == 0  # off: the same job ids
    assert invoke("plan", project.catalogue, "--sink-refresh").exit_code == 2


def test_the_compile_cache_flag_never_asks_for_new_videos(project, tmp_path):
    assert invoke("render", project.catalogue, "--plain").exit_code == 0
    for folder in (str(tmp_path / "cc"), "off"):
        result = invoke("plan", project.catalogue, "--compile-cache", folder)
        assert result.exit_code == 0, result.output  # the same job ids: nothing to render
