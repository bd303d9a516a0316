"""Command voices in a catalogue: accepted into a `CommandVoice`, or refused
with a Problem naming file, line, persona, language, field and fix."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from avatar_batch.core.records import CommandVoice

ARGV = [sys.executable, "fake_tts.py", "--text-file", "{text_file}", "--out", "{out_wav}"]


def with_zh_voice(project, voice) -> dict:
    (project.root / "fake_tts.py").write_text("print('hi')\n")
    return project.edited(lambda d: d["personas"]["doc"]["voices"].update(zh=voice))


def line_of(project, needle: str) -> int:
    text = (project.root / "catalogue.yaml").read_text(encoding="utf-8").splitlines()
    return next(number for number, line in enumerate(text, 1) if line.strip() == needle)


def test_a_command_voice_loads_with_its_program_and_project_files(project):
    (project.root / "voices").mkdir()
    (project.root / "voices" / "zh.onnx").write_bytes(b"model")
    data = with_zh_voice(project, {"engine": "command", "argv": [*ARGV, "--model", "voices/zh.onnx", "0"]})
    catalogue = project.load(data, installed_voices=["en-us"])
    voice = catalogue.personas["doc"].voices["zh"]
    assert isinstance(voice, CommandVoice)
    assert voice.argv[0] == sys.executable and voice.executable == Path(sys.executable)
    assert voice.cwd == project.root.resolve()
    assert voice.files == {
        "fake_tts.py": project.root.resolve() / "fake_tts.py",
        "voices/zh.onnx": project.root.resolve() / "voices" / "zh.onnx",
    }
    assert catalogue.personas["doc"].voices["en"] == "en-us"


def test_a_bare_program_name_is_found_on_path(project):
    catalogue = project.load(with_zh_voice(project, {"engine": "command", "argv": ["sh", *ARGV[1:]]}))
    voice = catalogue.personas["doc"].voices["zh"]
    assert isinstance(voice, CommandVoice) and voice.executable.name == "sh" and voice.executable.is_absolute()


def test_a_program_inside_the_project_by_relative_path(project):
    (project.root / "bin").mkdir()
    program = project.root / "bin" / "say"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    catalogue = project.load(with_zh_voice(project, {"engine": "command", "argv": ["bin/say", *ARGV[2:]]}))
    assert catalogue.personas["doc"].voices["zh"].executable == program.resolve()


def test_missing_program_on_path_names_the_fix(project):
    data = with_zh_voice(project, {"engine": "command", "argv": ["piper-not-installed", *ARGV[2:]]})
    problem = project.error(data)
    assert problem.field == "personas.doc.voices.zh.argv.0" and problem.line == line_of(
        project, "- piper-not-installed"
    )
    assert "persona 'doc', language 'zh'" in problem.message and "not found on PATH" in problem.message
    assert "install piper-not-installed" in problem.fix and "PATH" in problem.fix
    assert problem.file.endswith("catalogue.yaml")


def test_missing_placeholders_are_errors(project):
    data = with_zh_voice(project, {"engine": "command", "argv": [sys.executable, "fake_tts.py", "--out", "x.wav"]})
    problems = [p for p in project.problems(data) if p.severity == "error"]
    assert sorted(p.message.split("has no ")[1] for p in problems) == [
        "{out_wav} placeholder",
        "{text_file} placeholder",
    ]
    line = line_of(project, "argv:")
    assert all(p.field == "personas.doc.voices.zh.argv" and p.line == line and "'{" in p.fix for p in problems)


def test_empty_argv_is_an_error(project):
    problem = project.error(with_zh_voice(project, {"engine": "command", "argv": []}))
    assert problem.field == "personas.doc.voices.zh.argv" and "argv is empty" in problem.message
    assert "{text_file}" in problem.fix


def test_unknown_engine_and_unknown_key(project):
    data = with_zh_voice(project, {"engine": "comand", "argv": ARGV})
    problem = project.error(data)
    assert problem.field == "personas.doc.voices.zh.engine" and "did you mean 'command'" in problem.fix
    problems = project.problems(with_zh_voice(project, {"engine": "command", "args": ARGV}))
    assert {(p.field, p.fix) for p in problems} == {
        ("personas.doc.voices.zh.argv", "add 'argv: …'"),
        ("personas.doc.voices.zh.args", "did you mean 'argv'?"),
    }


def test_a_voice_of_the_wrong_type_is_one_problem(project):
    problem = project.error(with_zh_voice(project, 5))
    assert problem.field == "personas.doc.voices" and "espeak-ng voice id" in problem.message


def test_an_unknown_placeholder_is_a_warning(project):
    catalogue = project.load(with_zh_voice(project, {"engine": "command", "argv": [*ARGV, "{speaker}"]}))
    assert any("'{speaker}' is not a placeholder" in warning for warning in catalogue.warnings)


def test_a_program_outside_the_project_by_relative_path_is_refused(project):
    problem = project.error(with_zh_voice(project, {"engine": "command", "argv": ["../say", *ARGV[1:]]}))
    assert problem.field == "personas.doc.voices.zh.argv.0" and "climbs out" in problem.message


def test_a_program_that_is_not_executable_is_refused(project):
    (project.root / "say").write_text("#!/bin/sh\n")
    os.chmod(project.root / "say", 0o644)
    problem = project.error(with_zh_voice(project, {"engine": "command", "argv": ["./say", *ARGV[1:]]}))
    assert "not an executable file" in problem.message and "chmod +x" in problem.fix
