"""Every command answers --help, and the README lists every command that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from avatar_batch.cli import app

README = Path(__file__).resolve().parents[2] / "README.md"
COMMANDS = [
    ["init"],
    ["render"],
    ["validate"],
    ["plan"],
    ["doctor"],
    ["library", "list"],
    ["library", "verify"],
    ["library", "rebuild"],
    ["library", "prune"],
    ["weights", "manifest"],
    ["weights", "tiny"],
    ["weights", "verify"],
    ["weights", "download"],
    ["serve"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help(command):
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_readme_documents_every_command():
    text = README.read_text(encoding="utf-8")
    for command in COMMANDS:
        head = command[0] if command[0] not in ("library", "weights") else " ".join(command)
        pattern = re.escape(head).replace(r"\ ", r"[ `|\\]+")
        if command[0] in ("library", "weights"):
            assert re.search(re.escape(command[0]) + r" [a-z|\\]*" + re.escape(command[1]), text), command
        else:
            assert re.search(r"`" + pattern, text), command


def test_unknown_option_is_usage_error():
    result = CliRunner().invoke(app, ["render", "x.yaml", "--no-such-flag"])
    assert result.exit_code == 2
