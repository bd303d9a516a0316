"""A run killed at any moment leaves nothing partial visible, and the next run
finishes the rest; SIGINT exits 130 after removing temporary files."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def start_render(project) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "avatar_batch", "render", str(project.catalogue), "--plain"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=project.root,
    )


def wait_for(predicate, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def staging_present(library: Path) -> bool:
    return library.exists() and any(p.name.startswith(".tmp-") for p in library.iterdir())


def assert_consistent(project) -> None:
    """Every manifest row points at whole files; no temp file is referenced."""
    manifest = project.library / "manifest.json"
    if not manifest.exists():
        return
    for item in json.loads(manifest.read_text(encoding="utf-8"))["items"]:
        for key in ("video", "poster", "captions_vtt", "captions_srt"):
            if item.get(key):
                assert ".tmp-" not in item[key]
                assert (project.library / item[key]).stat().st_size > 0


@pytest.mark.parametrize("moment", ["first-staging", "after-first-commit"])
def test_sigkill_then_rerun_completes(project, moment):
    process = start_render(project)
    if moment == "first-staging":
        wait_for(lambda: staging_present(project.library))
    else:
        wait_for(lambda: len(project.manifest_items()) == 1)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert_consistent(project)

    rerun = subprocess.run(
        [sys.executable, "-m", "avatar_batch", "render", str(project.catalogue), "--plain"],
        capture_output=True,
        text=True,
        cwd=project.root,
        timeout=120,
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert sorted(i["status"] for i in project.manifest_items()) == ["completed", "completed"]
    assert not any(p.name.startswith(".tmp-") for p in project.library.rglob("*"))
    assert_consistent(project)


def test_sigint_exits_130_and_removes_temporary_files(project):
    process = start_render(project)
    wait_for(lambda: staging_present(project.library))
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output.decode()
    assert not any(p.name.startswith(".tmp-") for p in project.library.rglob("*"))
    assert_consistent(project)


def test_sigterm_is_handled_like_sigint(project):
    process = start_render(project)
    wait_for(lambda: staging_present(project.library))
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    assert process.returncode == 130
    assert not any(p.name.startswith(".tmp-") for p in project.library.rglob("*"))
