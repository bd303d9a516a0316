"""Helpers shared by the hardening and browser tests: throw-away projects,
the real CLI in a subprocess, and snapshots that say whether a library changed."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "avatar_batch"]
VIDEO_KEYS = ("video", "poster", "captions_vtt", "captions_srt")


class Project:
    """A folder with a root marker, the repository's assets and prompts, and
    one catalogue under questions/."""

    def __init__(self, root: Path, name: str = "smoke.yaml"):
        self.root = root
        self.catalogue = root / "questions" / name

    @property
    def library(self) -> Path:
        written = self.data()["library"]
        return (self.catalogue.parent / written).resolve()

    def data(self) -> dict[str, Any]:
        return yaml.safe_load(self.catalogue.read_text(encoding="utf-8"))

    def write(self, data: dict[str, Any]) -> None:
        text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
        self.catalogue.write_text(text, encoding="utf-8")


def make_project(root: Path, data: dict[str, Any] | None = None, name: str = "smoke.yaml") -> Project:
    (root / "questions").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    shutil.copytree(REPO / "assets", root / "assets")
    shutil.copytree(REPO / "prompts", root / "prompts")
    project = Project(root, name)
    if data is None:
        shutil.copy(REPO / "questions" / "smoke.yaml", project.catalogue)
    else:
        project.write(data)
    return project


def smoke_data(entries: Iterable[dict[str, Any]] | None = None, **top: Any) -> dict[str, Any]:
    """The smoke catalogue as data, with other entries or top-level keys."""
    data = yaml.safe_load((REPO / "questions" / "smoke.yaml").read_text(encoding="utf-8"))
    if entries is not None:
        data["entries"] = list(entries)
    data.update(top)
    return data


def trio_data() -> dict[str, Any]:
    """The smoke catalogue plus a third entry: three jobs for runs to be killed in."""
    third = {
        "id": "smoke-exit",
        "department": "information",
        "question": "Where is the exit?",
        "answer": "The exit is behind you. Follow the green signs.",
    }
    return smoke_data(entries=[*smoke_data()["entries"], third])


def cli(*args: Any, cwd: Path | None = None, timeout_s: float = 300) -> subprocess.CompletedProcess:
    """The real command line in its own process (what cron runs)."""
    return subprocess.run(
        [*CLI, *(str(a) for a in args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout_s,
    )


def render(project: Project, library: Path | None = None, *extra: Any) -> subprocess.CompletedProcess:
    args = ["render", project.catalogue, "--plain", *extra]
    if library is not None:
        args += ["--library", library]
    return cli(*args, cwd=project.root)


def manifest_items(library: Path) -> list[dict[str, Any]]:
    path = library / "manifest.json"
    return json.loads(path.read_text(encoding="utf-8"))["items"] if path.exists() else []


def snapshot(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every file and link below `folder`: relative path -> (size, mtime_ns, sha256)."""
    found: dict[str, tuple[int, int, str]] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_dir() and not path.is_symlink():
            continue
        stat = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else os.readlink(path)
        found[str(path.relative_to(folder))] = (stat.st_size, stat.st_mtime_ns, digest)
    return found


def ffprobe_ok(path: Path) -> bool:
    """ffprobe reads the file and finds at least one stream (an MP4, a JPEG)."""
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type", "-of", "json", str(path)],
        capture_output=True,
        text=True,
    )
    return done.returncode == 0 and bool(json.loads(done.stdout or "{}").get("streams"))


def library_problems(library: Path) -> list[str]:
    """Ways the library's rows and files disagree: a row naming a missing or
    undecodable file, a job folder no row names, a leftover temporary file."""
    items = manifest_items(library)
    problems = []
    named = set()
    for item in items:
        if item.get("video"):
            named.add((library / item["video"]).parent)
        if item["status"] not in ("completed", "fallback"):
            continue
        for key in VIDEO_KEYS:
            path = library / item[key]
            if not path.is_file() or path.stat().st_size == 0:
                problems.append(f"{item['job_id']}: {key} {path} missing or empty")
            elif not ffprobe_ok(path):
                problems.append(f"{item['job_id']}: {key} {path} does not decode")
    for folder in (library / "videos").glob("*/*/*"):
        if folder not in named:
            problems.append(f"orphan folder {folder}")
    problems += [f"leftover {p}" for p in library.rglob(".tmp-*")]
    return problems
