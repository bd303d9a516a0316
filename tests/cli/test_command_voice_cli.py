"""A catalogue whose persona speaks through a command voice (a small script),
end to end: `validate`, `doctor`, `render`, and a failing program."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from typer.testing import CliRunner

from avatar_batch.cli import app

FAKE_TTS = Path(__file__).resolve().parents[1] / "speech" / "fake_tts.py"


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def use_command_voice(project, mode: str = "ok") -> None:
    (project.root / "tools").mkdir(exist_ok=True)
    shutil.copy(FAKE_TTS, project.root / "tools" / "fake_tts.py")
    argv = [sys.executable, "../tools/fake_tts.py", "--text-file", "{text_file}", "--out", "{out_wav}", "--mode", mode]
    data = project.data()
    data["personas"]["dr_chen"]["voices"]["en"] = {"engine": "command", "argv": argv}
    project.write(data)


def test_render_speaks_with_the_command_voice(project):
    use_command_voice(project)
    assert invoke("validate", project.catalogue).exit_code == 0
    # A wide terminal: doctor's table would wrap the long interpreter path.
    doctor = CliRunner().invoke(app, ["doctor", str(project.catalogue)], env={"COLUMNS": "400"})
    assert "voice dr_chen/en" in doctor.output and f"command {sys.executable}" in doctor.output
    result = invoke("render", project.catalogue, "--only", "smoke-register", "--plain")
    assert result.exit_code == 0, result.output
    (item,) = project.manifest_items()
    assert item["status"] == "completed" and item["telemetry"]["speech_source"] == "tts"
    assert abs(item["loudness_lufs"] + 16.0) < 1.0
    # 60 ms per character of "Please register in the hall." from the script
    assert abs(item["duration_s"] - 0.06 * 28) < 0.1


def test_editing_the_script_re_renders(project):
    use_command_voice(project)
    assert invoke("render", project.catalogue, "--only", "smoke-register", "--plain").exit_code == 0
    assert invoke("plan", project.catalogue, "--only", "smoke-register").exit_code == 0
    script = project.root / "tools" / "fake_tts.py"
    script.write_text(script.read_text(encoding="utf-8") + "\n# a new voice\n", encoding="utf-8")
    assert invoke("plan", project.catalogue, "--only", "smoke-register").exit_code == 2


def test_a_failing_command_fails_the_job_clearly(project):
    use_command_voice(project, mode="fail")
    data = project.data()
    data["entries"][0]["fallback_to_still"] = False
    project.write(data)
    result = invoke("render", project.catalogue, "--only", "smoke-register", "--plain")
    assert result.exit_code == 1
    (item,) = project.manifest_items()
    assert item["status"] == "failed"
    assert "command TTS" in item["failure"] and "exit code 3" in item["failure"]
    assert "could not be loaded" in item["failure"]
