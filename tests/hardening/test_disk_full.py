"""A library on a full disk: the run fails saying so (ENOSPC), the items
already there stay whole and verified, nothing half-written is left, and the
next run, once there is space again, finishes the job.

The disk is a 3 MiB tmpfs (we run as root in CI); where mounting is refused
the test is skipped, saying why."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.hardening.projects import cli, library_problems, make_project, manifest_items, render, smoke_data, snapshot

LONG_ANSWER = " ".join(["Please bring your identity card, your insurance card and any letters from your doctor."] * 4)
FREE_KIB = (0, 6, 40, 600)  # from the lock file's pid up to the speech intermediates
MAX_FAILED_RUN_S = 30.0


@pytest.fixture
def small_disk(tmp_path: Path):
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3M", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root and mount rights): {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def free_kib(folder: Path) -> int:
    return shutil.disk_usage(folder).free // 1024


def fill_until(folder: Path, free: int) -> Path:
    """A filler file that leaves about `free` KiB."""
    filler = folder / "filler"
    with open(filler, "ab") as handle:
        handle.write(b"\0" * max(0, (free_kib(folder) - free) * 1024))
    return filler


def playable_folders(library: Path) -> dict[str, dict]:
    return {
        item["job_id"]: snapshot((library / item["video"]).parent)
        for item in manifest_items(library)
        if item["status"] == "completed"
    }


def test_full_disk_fails_cleanly_and_the_next_run_recovers(small_disk: Path, smoke_library: Path, tmp_path: Path):
    library = small_disk / "library"
    shutil.copytree(smoke_library, library)
    entries = smoke_data()["entries"] + [
        {"id": "smoke-long", "department": "registration", "question": "What do I bring?", "answer": LONG_ANSWER}
    ]
    project = make_project(tmp_path / "project", smoke_data(entries=entries))
    before = playable_folders(library)
    assert len(before) == 2

    for free in FREE_KIB:
        filler = fill_until(small_disk, free)
        started_s = time.monotonic()
        done = render(project, library)
        output = done.stdout + done.stderr
        assert done.returncode == 1, f"{free} KiB free: {output}"
        # A failed write fails at once; nothing waits out the 120 s TTS timeout.
        assert time.monotonic() - started_s < MAX_FAILED_RUN_S, output
        assert "No space left on device" in output, output
        assert "Traceback" not in output, output
        json.loads((library / "manifest.json").read_text(encoding="utf-8"))  # whole, not half-written
        assert playable_folders(library) == before, f"{free} KiB free: a finished item changed"
        assert not library_problems(library), library_problems(library)
        filler.unlink()

    verified = cli("library", "verify", library)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    subprocess.run(["mount", "-o", "remount,size=64M", str(small_disk)], check=True)
    again = render(project, library)
    assert again.returncode == 0, again.stdout + again.stderr
    assert sorted(i["status"] for i in manifest_items(library)) == ["completed"] * 3
    assert {job: files for job, files in playable_folders(library).items() if job in before} == before
    assert not library_problems(library)
    assert cli("library", "verify", library).returncode == 0
