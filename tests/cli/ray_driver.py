"""Renders a catalogue through `--executor ray` on a local Ray cluster it starts, and prints
the outcome as JSON. Run as a script by test_ray_executor, so that the state `ray.init`
leaves in its caller (a SIGTERM handler that calls sys.exit, atexit hooks, threads) dies
with this process instead of outliving the test inside pytest."""

from __future__ import annotations

import json
import sys

import ray

from avatar_batch import batch


def main(catalogue: str, library_dir: str) -> None:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        options = batch.RunOptions(catalogue, library_dir=library_dir, workers={"executor": "ray", "workers": 2})
        report = batch.render(options)
        # Connected to a cluster it did not start, the run leaves it running.
        still_up = ray.is_initialized()
    finally:
        ray.shutdown()
    print(json.dumps({"outcome": report.outcome, "failed": report.failed, "still_up": still_up}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
