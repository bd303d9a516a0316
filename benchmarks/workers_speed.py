"""Throughput of 1 vs 2 local workers with the tiny Live Avatar model on CPU.

    python -m benchmarks.workers_speed [--entries 4] [--weights DIR]

Renders a generated catalogue of `--entries` recorded English answers (the
smoke persona, 2 s tones) with `--renderer liveavatar --preset quick` into a fresh library per
case, through the real command line (`render --workers N --plain`), and reads
the run report: wall seconds, videos per minute, and each worker's busy
seconds and utilisation. The two cases must produce identical frames (same job
ids, same frame hashes), which is checked too. Writes
benchmarks/results/workers-<yyyymmdd>.json. On a shared 2-core machine the
figures move with the load; the load average is recorded beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

from tests.conftest import write_sine_wav

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
ANSWERS = (  # about two seconds of speech each, as in the smoke catalogue
    "Please register in the hall.",
    "The pharmacy is next door.",
    "Bring your insurance card.",
    "Visiting hours end at eight.",
)


def write_catalogue(project: Path, entries: int) -> Path:
    """A project like the repository (its root marked by pyproject.toml) with
    `entries` answers for the smoke persona; the library lands in project/library."""
    (project / "questions").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'bench'\n", encoding="utf-8")
    shutil.copytree(REPO / "assets", project / "assets")
    shutil.copytree(REPO / "prompts", project / "prompts")
    data = yaml.safe_load((REPO / "questions" / "smoke.yaml").read_text(encoding="utf-8"))
    data["entries"] = [
        {"id": f"bench-{i}", "department": "info", "question": f"Question {i}?", "answer": ANSWERS[i % len(ANSWERS)]}
        for i in range(entries)
    ]
    # Recorded answers: TTS under load may switch engine (same job id, other
    # waveform), which would make the two cases differ for no reason of theirs.
    for index, entry in enumerate(data["entries"]):
        wav = write_sine_wav(project / "audio" / f"{entry['id']}.wav", 2.0, freq_hz=180 + 20 * index)
        entry["audio"] = {"en": f"../audio/{wav.name}"}
    path = project / "questions" / "bench.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def render(catalogue: Path, library: Path, weights: Path, workers: int) -> dict:
    argv = [sys.executable, "-m", "avatar_batch", "render", str(catalogue), "--library", str(library)]
    argv += ["--renderer", "liveavatar", "--weights", str(weights), "--preset", "quick", "--plain"]
    argv += ["--workers", str(workers)]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"render --workers {workers} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    report = json.loads(sorted((library / "runs").glob("*.json"))[-1].read_text(encoding="utf-8"))
    return {"workers": workers, "command_s": round(seconds, 1), "report": report}


def frame_hashes(library: Path) -> list[tuple[str, str]]:
    from tests.cli.workers_fixtures import library_fingerprint

    return [(row[2], row[4]) for row in library_fingerprint(library)]


def summary(case: dict) -> dict:
    report = case["report"]
    jobs = len(report["jobs"])
    return {
        "workers": case["workers"],
        "jobs": jobs,
        "wall_s": report["wall_s"],
        "command_s": case["command_s"],
        "videos_per_min": round(60 * jobs / report["wall_s"], 2),
        "per_worker": report["workers"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=4)
    parser.add_argument("--weights", type=Path, help="tiny checkpoint (default: written into a temp folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="workers-bench-") as tmp:
        root = Path(tmp)
        weights = args.weights
        if weights is None:
            weights = root / "weights"
            subprocess.run([sys.executable, "-m", "avatar_batch", "weights", "tiny", str(weights)], check=True)
        catalogue = write_catalogue(root / "project", args.entries)
        cases = [render(catalogue, root / f"library-{n}", weights, n) for n in (1, 2)]
        same = frame_hashes(root / "library-1") == frame_hashes(root / "library-2")
    runs = [summary(case) for case in cases]
    result = {
        "device": f"{os.cpu_count()}-core CPU (shared; load average {os.getloadavg()[0]:.1f} at the end)",
        "command": "python -m benchmarks.workers_speed " + " ".join(sys.argv[1:]),
        "model": "tiny Live Avatar checkpoint (weights tiny), preset quick",
        "runs": runs,
        "speedup_2_vs_1": round(runs[1]["videos_per_min"] / runs[0]["videos_per_min"], 2),
        "identical_frames": same,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"workers-{datetime.now(UTC):%Y%m%d}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
