"""`render --executor ray` on a local Ray cluster of CPU actors: the same
library as the local executor, every file shipped through Ray."""

from __future__ import annotations

import ray

from avatar_batch import batch
from tests.cli.workers_fixtures import latest_report, library_fingerprint, use_recordings


def test_ray_actors_make_the_same_library_as_one_local_process(project, tmp_path):
    use_recordings(project)
    local, remote = tmp_path / "local", tmp_path / "ray"
    batch.render(batch.RunOptions(project.catalogue, library_dir=local))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        options = batch.RunOptions(project.catalogue, library_dir=remote, workers={"executor": "ray", "workers": 2})
        report = batch.render(options)
        # Connected to a cluster it did not start, the run leaves it running.
        assert ray.is_initialized()
    finally:
        ray.shutdown()
    assert report.outcome == "ok" and report.failed == 0
    assert library_fingerprint(remote) == library_fingerprint(local)
    workers = latest_report(remote)["workers"]
    assert [w["worker"] for w in workers] == ["r0", "r1"]
    assert sum(w["jobs"] for w in workers) == 2 and all(w["busy_s"] > 0 for w in workers)
