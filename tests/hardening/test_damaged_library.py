"""A library damaged behind its back (a truncated video, a deleted one):
`library verify` names both, and the next `render` re-renders exactly those
two, leaving the healthy item alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.hardening.projects import cli, library_problems, manifest_items, render, snapshot


def test_verify_names_the_damage_and_render_repairs_exactly_it(trio, tmp_path: Path):
    library = tmp_path / "library"
    shutil.copytree(trio.library, library)
    items = {item["entry_id"]: item for item in manifest_items(library)}
    truncated, deleted, healthy = items["smoke-register"], items["smoke-pharmacy"], items["smoke-exit"]
    video = library / truncated["video"]
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    (library / deleted["video"]).unlink()
    healthy_before = snapshot((library / healthy["video"]).parent)

    verified = cli("library", "verify", library)
    report = verified.stdout + verified.stderr
    assert verified.returncode == 65, report
    for item in (truncated, deleted):
        assert item["video"] in report and f"entry '{item['entry_id']}'" in report, report
    assert healthy["video"] not in report
    assert "missing" in report and "bytes" in report  # what is wrong with each

    repaired = render(trio.project, library)
    assert repaired.returncode == 0, repaired.stderr
    (run,) = [p for p in (library / "runs").glob("*.json") if not (trio.library / "runs" / p.name).exists()]
    jobs = json.loads(run.read_text(encoding="utf-8"))["jobs"]
    assert sorted(job["job_id"] for job in jobs) == sorted([truncated["job_id"], deleted["job_id"]])
    assert "up to date 1" in repaired.stderr
    assert snapshot((library / healthy["video"]).parent) == healthy_before
    assert {i["job_id"] for i in manifest_items(library)} == {i["job_id"] for i in manifest_items(trio.library)}
    assert not library_problems(library)
    assert cli("library", "verify", library).returncode == 0
