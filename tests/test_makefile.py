"""`make test` runs the linters, then exactly the README's test command inside .venv."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dry_run() -> list[str]:
    if shutil.which("make") is None:
        raise AssertionError("make is missing: apt-get install make (.ci/run does)")
    done = subprocess.run(
        ["make", "-n", "--no-print-directory", "-C", str(REPO), "test", "VENV=/nonexistent-venv"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()


def test_make_test_lints_type_checks_then_runs_the_readme_command(dry_run):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    assert "python3 -m pytest -q\n" in blocks  # the README's test command, alone in its block
    steps = [
        "ruff check",
        "ruff format --check",
        "-m mypy",
        "source /nonexistent-venv/bin/activate && python3 -m pytest -q",
    ]
    found = [next(i for i, line in enumerate(dry_run) if step in line) for step in steps]
    assert found == sorted(found), dry_run


def test_make_test_installs_the_test_extras_and_the_browser_packages(dry_run):
    text = "\n".join(dry_run)
    assert '-e ".[runner,test]"' in text and "torch==2.13.0" in text
    for package in ("ffmpeg", "espeak-ng", "chromium", "chromium-driver", "fonts-noto-cjk"):
        assert package in text


def test_ci_runs_make_test():
    assert "exec make test" in (REPO / ".ci" / "run").read_text(encoding="utf-8")
