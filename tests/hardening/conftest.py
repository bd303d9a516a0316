"""Fixtures for the hardening tests: real smoke and three-entry renders made
once per session, and unreadable files even for root."""

from __future__ import annotations

import builtins
import errno
import io
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.hardening.projects import Project, make_project, render, trio_data


@pytest.fixture(scope="session")
def smoke_library(tmp_path_factory) -> Path:
    """The smoke catalogue rendered once (real TTS and ffmpeg); tests that
    must not change it compare snapshots, tests that change it copy it."""
    root = tmp_path_factory.mktemp("smoke")
    project = make_project(root / "project")
    library = root / "library"
    done = render(project, library)
    assert done.returncode == 0, done.stderr
    return library


@dataclass(frozen=True)
class Rendered:
    project: Project
    library: Path
    seconds: float  # wall time of the clean run, process start included


@pytest.fixture(scope="session")
def trio(tmp_path_factory) -> Rendered:
    """A three-entry catalogue rendered once, cleanly: the reference that
    killed, raced and damaged runs must end up equal to."""
    root = tmp_path_factory.mktemp("trio")
    project = make_project(root / "project", trio_data())
    library = root / "library"
    started_s = time.monotonic()
    done = render(project, library)
    assert done.returncode == 0, done.stderr
    return Rendered(project, library, time.monotonic() - started_s)


@pytest.fixture
def unreadable_files(monkeypatch) -> None:
    """Make `chmod 0` files unreadable for this process, as they are for
    anyone but root. As root, `open` is wrapped to refuse them the way the
    kernel refuses other users: PermissionError (EACCES)."""
    if os.geteuid() != 0:
        return
    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)):
            try:
                mode = os.stat(file).st_mode
            except OSError:
                mode = None
            if mode is not None and stat.S_ISREG(mode) and not mode & 0o444:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_open)
