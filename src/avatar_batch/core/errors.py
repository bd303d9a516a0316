"""Typed errors. Each carries the process exit code `cli` maps it to.

Stages raise these and never swallow them; only `batch` decides to isolate a
failed job, and only `cli` turns an error into an exit code and a message.
Exit codes follow BSD sysexits where one fits (65 data, 66 no input,
69 unavailable, 73 cannot create, 75 temp failure).
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_JOBS_FAILED = 1
EXIT_USAGE = 2
EXIT_PENDING = 2  # `plan`: work is pending
EXIT_DATAERR = 65
EXIT_NOINPUT = 66
EXIT_UNAVAILABLE = 69
EXIT_CANTCREAT = 73
EXIT_LOCKED = 75
EXIT_INTERRUPTED = 130


class AvatarBatchError(Exception):
    """Base of every error the tool raises on purpose."""

    exit_code: int = EXIT_JOBS_FAILED


class UsageError(AvatarBatchError):
    """A flag or argument that cannot work (bad size string, unknown preset...)."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, located as precisely as we can.

    `fix` tells the user what to do; `severity` is "error" or "warning".
    """

    file: str
    message: str
    line: int | None = None
    entry: str | None = None
    field: str | None = None
    value: str | None = None
    fix: str | None = None
    severity: str = "error"

    def render(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        parts = [f"{where}: {self.severity}"]
        if self.entry:
            parts.append(f"entry '{self.entry}'")
        if self.field:
            parts.append(f"field '{self.field}'")
        head = " ".join(parts)
        text = f"{head}: {self.message}"
        if self.value is not None:
            text += f" (got {self.value!r})"
        if self.fix:
            text += f". Fix: {self.fix}"
        return text


class CatalogueError(AvatarBatchError):
    """The catalogue (or a file it names) is invalid. Carries every problem found."""

    exit_code = EXIT_DATAERR

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]):
        self.problems = tuple(problems)
        errors = [p for p in self.problems if p.severity == "error"]
        super().__init__("\n".join(p.render() for p in errors) or "invalid catalogue")


class InputFileError(AvatarBatchError):
    """A file the user named does not exist or cannot be read."""

    exit_code = EXIT_NOINPUT


class UnavailableError(AvatarBatchError):
    """No usable GPU, weights or external tool for what was asked."""

    exit_code = EXIT_UNAVAILABLE


class WeightsError(UnavailableError):
    """A checkpoint folder is missing files or holds wrong tensors.

    `problems` lists every (file, key) found wrong, so one run reports them all.
    """

    def __init__(self, message: str, problems: list[Problem] | tuple[Problem, ...] = ()):
        self.problems = tuple(problems)
        detail = "\n".join(p.render() for p in self.problems)
        super().__init__(message + ("\n" + detail if detail else ""))


class WouldOverwriteError(AvatarBatchError):
    """Writing would replace a file the user already has; nothing was written."""

    exit_code = EXIT_CANTCREAT


class LockedError(AvatarBatchError):
    """Another run holds this library's lock."""

    exit_code = EXIT_LOCKED


class ToolError(AvatarBatchError):
    """An external program (ffmpeg, a TTS engine) failed; message ends with its stderr tail."""

    exit_code = EXIT_JOBS_FAILED


class JobError(AvatarBatchError):
    """One job could not be completed; `batch` records it and goes on."""

    exit_code = EXIT_JOBS_FAILED


class OutOfMemoryError(JobError):
    """The accelerator ran out of memory at the settings tried."""


class Interrupted(AvatarBatchError):
    """SIGINT/SIGTERM arrived; temporary files were removed."""

    exit_code = EXIT_INTERRUPTED
