"""Pipeline overhead benchmark: a no-op rerun of the example catalogue and a
`plan` of a generated 1,000-entry catalogue with nothing to do.

    python -m benchmarks.pipeline_speed [--repeats 5]

Writes benchmarks/results/pipeline-<yyyymmdd>.json. Both cases time the real
command line in a subprocess (interpreter start and imports included), because
that is what cron pays every night.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

from avatar_batch import batch
from avatar_batch.core.records import LibraryItem
from avatar_batch.library.manifest import write_manifest

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def cli(*args: str, cwd: Path) -> tuple[float, int]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "avatar_batch", *args], cwd=cwd, capture_output=True)
    return time.perf_counter() - started, done.returncode


def make_project(root: Path) -> Path:
    for folder in ("assets", "prompts", "questions"):
        shutil.copytree(REPO / folder, root / folder)
    (root / "pyproject.toml").write_text("[project]\nname = 'bench'\n")
    return root


def thousand_entry_catalogue(project: Path, num_entries: int) -> Path:
    data = yaml.safe_load((project / "questions" / "triage.yaml").read_text(encoding="utf-8"))
    template = data["entries"]
    data["entries"] = [{**template[i % len(template)], "id": f"faq-{i:04d}"} for i in range(num_entries)]
    data["library"] = "../output/thousand"
    path = project / "questions" / "thousand.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def fill_library(catalogue: Path) -> int:
    """Write a library in which every job of the catalogue is complete, with
    small stand-in files, so `plan` has nothing to do (rendering 2,000 real
    videos would measure the renderer, not the planner)."""
    prepared = batch.prepare(batch.RunOptions(catalogue_path=catalogue, check_voices=False))
    root = prepared.library.root
    items = []
    for job in prepared.jobs:
        rel = f"videos/{job.entry_id}/{job.language}/{job.job_id}"
        (root / rel).mkdir(parents=True, exist_ok=True)
        (root / rel / "video.mp4").write_bytes(b"v" * 64)
        items.append(
            LibraryItem(
                job.job_id,
                job.entry_id,
                job.language,
                job.persona,
                job.department,
                job.question,
                job.answer,
                "completed",
                video=f"{rel}/video.mp4",
                telemetry={"file_sizes_bytes": {"video": 64}},
                settings=job.settings.hashed_fields(),
            )
        )
    write_manifest(root / "manifest.json", items, "2026-01-01T00:00:00Z")
    return len(items)


def timed(repeats: int, *args: str, cwd: Path) -> dict:
    runs = [cli(*args, cwd=cwd) for _ in range(repeats)]
    codes = sorted({code for _, code in runs})
    seconds = [s for s, _ in runs]
    return {"median_s": round(statistics.median(seconds), 3), "max_s": round(max(seconds), 3), "exit_codes": codes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--entries", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(Path(tmp))
        first_s, code = cli("render", "questions/triage.yaml", "--plain", cwd=project)
        if code != 0:
            raise SystemExit(f"the example render failed (exit {code})")
        noop = timed(args.repeats, "render", "questions/triage.yaml", "--plain", cwd=project)
        catalogue = thousand_entry_catalogue(project, args.entries)
        num_jobs = fill_library(catalogue)
        plan = timed(args.repeats, "plan", str(catalogue.relative_to(project)), cwd=project)
    result = {
        "device": f"{os.cpu_count()}-core CPU",
        "command": "python -m benchmarks.pipeline_speed " + " ".join(sys.argv[1:]),
        "runs": [
            {"case": "example render, first run (still renderer)", "seconds": round(first_s, 1)},
            {"case": "example render, no-op rerun", "target_s": 2.0, **noop},
            {"case": f"plan, {args.entries} entries ({num_jobs} jobs), nothing to do", "target_s": 3.0, **plan},
        ],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"pipeline-{datetime.now(UTC):%Y%m%d}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
