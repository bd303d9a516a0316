"""The one place that runs external programs.

argv lists only, never a shell, so catalogue text can never become a command.
A failure raises ToolError ending with the program's stderr tail, because the
last lines of ffmpeg's or espeak's stderr are what tells a user what went wrong.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from avatar_batch.core.errors import ToolError, UnavailableError

STDERR_TAIL_CHARS = 2000


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    stdout: bytes
    stderr: bytes


def require_program(name: str, hint: str) -> str:
    """Absolute path of `name` on PATH, or UnavailableError saying how to install it."""
    path = shutil.which(name)
    if path is None:
        raise UnavailableError(f"'{name}' was not found on PATH. {hint}")
    return path


def stderr_tail(stderr: bytes | str, limit: int = STDERR_TAIL_CHARS) -> str:
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    return text.strip()[-limit:]


def run(
    argv: Sequence[str | Path],
    *,
    timeout_s: float | None = None,
    input_bytes: bytes | None = None,
    cwd: Path | None = None,
    what: str | None = None,
) -> Completed:
    """Run argv to completion; raise ToolError on non-zero exit or timeout."""
    args = tuple(str(a) for a in argv)
    label = what or Path(args[0]).name
    try:
        done = subprocess.run(
            args,
            input=input_bytes,
            stdin=None if input_bytes is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
            cwd=cwd,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ToolError(f"{label} did not finish within {timeout_s:.0f} s: {stderr_tail(exc.stderr or b'')}") from exc
    except FileNotFoundError as exc:
        raise UnavailableError(f"{label}: program '{args[0]}' not found") from exc
    if done.returncode != 0:
        raise ToolError(f"{label} failed with exit code {done.returncode}: {stderr_tail(done.stderr)}")
    return Completed(args, done.stdout, done.stderr)


def popen_writer(argv: Sequence[str | Path]) -> subprocess.Popen:
    """Start a program that reads its stdin (an encoder fed raw frames).
    stderr goes to a pipe the caller drains when the program ends."""
    args = [str(a) for a in argv]
    return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
