"""A command voice in the job id: its template, its program's version and the
project files it names change the id; an espeak-ng voice's id is unchanged."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from avatar_batch.core.errors import UsageError
from avatar_batch.core.records import CommandVoice, RenderSettings
from avatar_batch.plan import build_jobs
from tests.plan.plan_fixtures import make_catalogue, render_prompt

ARGV = ("piper", "--model", "voices/zh.onnx", "--input_file", "{text_file}", "--output_file", "{out_wav}")


def with_command_zh(root: Path, argv: tuple[str, ...] = ARGV):
    catalogue = make_catalogue(root)
    model = root / "voices" / "zh.onnx"
    model.parent.mkdir(exist_ok=True)
    if not model.exists():
        model.write_bytes(b"voice model v1")
    voice = CommandVoice(argv=argv, executable=Path("/opt/piper"), cwd=root, files={"voices/zh.onnx": model})
    ana = catalogue.personas["ana"]
    personas = {**catalogue.personas, "ana": replace(ana, voices={**ana.voices, "zh": voice})}
    return replace(catalogue, personas=personas)


def zh_id(catalogue, version: str = "piper 1.2.0") -> str:
    jobs = build_jobs(catalogue, RenderSettings(), "m", render_prompt, engine_version=lambda exe: version)
    return next(job.job_id for job in jobs if job.key == ("hours", "zh"))


def test_the_job_carries_the_command_voice(tmp_path: Path):
    catalogue = with_command_zh(tmp_path)
    asked: list[Path] = []
    jobs = build_jobs(
        catalogue, RenderSettings(), "m", render_prompt, engine_version=lambda exe: asked.append(exe) or "v"
    )
    zh = next(job for job in jobs if job.key == ("hours", "zh"))
    assert zh.voice.engine == "command" and zh.voice.voice == "piper"
    assert zh.voice.command is catalogue.personas["ana"].voices["zh"]
    assert asked == [Path("/opt/piper")]  # once per program and run, not once per job
    assert next(job for job in jobs if job.key == ("hours", "en")).voice.command is None


def test_template_version_and_voice_model_each_change_the_id(tmp_path: Path):
    base = zh_id(with_command_zh(tmp_path))
    assert zh_id(with_command_zh(tmp_path)) == base
    assert zh_id(with_command_zh(tmp_path), version="piper 1.3.0") != base
    assert zh_id(with_command_zh(tmp_path, (*ARGV, "--speaker", "1"))) != base
    (tmp_path / "voices" / "zh.onnx").write_bytes(b"voice model v2")
    assert zh_id(with_command_zh(tmp_path)) != base


def test_the_espeak_voice_ids_do_not_change(tmp_path: Path):
    plain = build_jobs(make_catalogue(tmp_path), RenderSettings(), "m", render_prompt)
    mixed = build_jobs(with_command_zh(tmp_path), RenderSettings(), "m", render_prompt, engine_version=lambda e: "v")
    assert [job.job_id for job in plain if job.language == "en"] == [
        job.job_id for job in mixed if job.language == "en"
    ]


def test_a_command_voice_without_a_version_source_is_refused(tmp_path: Path):
    with pytest.raises(UsageError, match="needs its program's version"):
        build_jobs(with_command_zh(tmp_path), RenderSettings(), "m", render_prompt)
