"""`render --executor ray` on a local Ray cluster of CPU actors: the same
library as the local executor, every file shipped through Ray.

The Ray driver runs in a child process: `ray.init` installs process-wide state
in its caller (a SIGTERM handler that calls sys.exit, atexit hooks, threads)
that would otherwise outlive this test inside the test process."""

from __future__ import annotations

import json
import subprocess
import sys

from avatar_batch import batch
from tests.cli.workers_fixtures import latest_report, library_fingerprint, use_recordings

DRIVER = """
import json, sys
import ray
from avatar_batch import batch
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
try:
    options = batch.RunOptions(sys.argv[1], library_dir=sys.argv[2], workers={"executor": "ray", "workers": 2})
    report = batch.render(options)
    # Connected to a cluster it did not start, the run leaves it running.
    still_up = ray.is_initialized()
finally:
    ray.shutdown()
print(json.dumps({"outcome": report.outcome, "failed": report.failed, "still_up": still_up}))
"""


def test_ray_actors_make_the_same_library_as_one_local_process(project, tmp_path):
    use_recordings(project)
    local, remote = tmp_path / "local", tmp_path / "ray"
    batch.render(batch.RunOptions(project.catalogue, library_dir=local))
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(project.catalogue), str(remote)],
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
