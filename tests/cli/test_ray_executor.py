"""`render --executor ray` on a local Ray cluster of CPU actors: the same
library as the local executor, every file shipped through Ray.

The Ray driver (ray_driver.py) runs in a child process: see why there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from avatar_batch import batch
from tests.cli.workers_fixtures import latest_report, library_fingerprint, use_recordings

DRIVER = Path(__file__).with_name("ray_driver.py")


def test_ray_actors_make_the_same_library_as_one_local_process(project, tmp_path):
    use_recordings(project)
    local, remote = tmp_path / "local", tmp_path / "ray"
    batch.render(batch.RunOptions(project.catalogue, library_dir=local))
    done = subprocess.run(
        [sys.executable, str(DRIVER), str(project.catalogue), str(remote)],
        capture_output=True,
        text=True,
        cwd=project.root,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"outcome": "ok", "failed": 0, "still_up": True}
    assert library_fingerprint(remote) == library_fingerprint(local)
    workers = latest_report(remote)["workers"]
    assert [w["worker"] for w in workers] == ["r0", "r1"]
    assert sum(w["jobs"] for w in workers) == 2 and all(w["busy_s"] > 0 for w in workers)
