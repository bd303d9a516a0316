"""Throughput of 1 vs 2 local workers through the real `render` command.

CPU, the tiny model (a tiny checkpoint is written when --weights is not given):
    python -m benchmarks.workers_speed [--jobs 2] [--weights DIR]
One GPU shared by two workers (what a second worker costs), with a 14B checkpoint:
    python -m benchmarks.workers_speed --weights /tmp/w14b --gpus 0 --size 384*256 \\
        --precision bf16 --gpu-memory 64 --jobs 4 --clips 2 --deadline-s 205 --out workers-gpu.json
The render needs ffmpeg and ffprobe on PATH (static builds will do) and the
project's Python dependencies; espeak-ng is not needed (every answer is recorded).

Writes a project of `--jobs` recorded answers of exactly `--clips` clips each
(speech-like tones: recordings, so no TTS engine is needed and both cases get
the same audio), then renders it into a fresh library with
`render --renderer liveavatar --plain --workers N`, N = 1 then 2 (`--gpus`
pins the workers: `--gpus 0 --workers 2` puts both on GPU 0). The command's
lines are printed as they come, with the seconds since it started. Per case:
generated frames/s and jobs/min over the run report's wall time (model loads
and compiles included: each worker pays its own), the time from the command's
start to its first finished video, each worker's busy seconds and utilisation,
the placements and peak GPU memory; across cases: whether every video decodes
to the same frames. Each case gets an empty torch.compile cache, so neither
reuses the other's kernels. Each case may run for an equal share of the time
left before `--deadline-s` (counted from this command's start); one still
running then is stopped as Ctrl-C stops it and reported with the jobs it
finished (frames are compared over the jobs both cases finished). The JSON is
rewritten after each case.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from benchmarks.render_offload import speech_s, write_speech

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
STOP_GRACE_S = 20.0  # a stopped render stops its workers (10 s each at most) and removes its staging folders
WORKER_COUNTS = (1, 2)
MIN_CASE_S = 60.0  # a case needs at least a model load and a first job: don't start one with less left
PITCHES_HZ = (140.0, 165.0, 190.0, 215.0)  # distinct recordings: every job has its own id
# PlainProgress's job_finished line: "  bench-0/en: completed in 12.3 s"
FINISHED_LINE = re.compile(r"^\S+ +\S+/\S+: (completed|fallback|failed) in \d")

Line = tuple[float, str]  # (seconds since the command started, the line)


@dataclass(frozen=True)
class Setup:
    """The render flags both cases share."""

    weights: Path
    preset: str = "quick"
    size: str | None = None
    precision: str | None = None
    gpu_memory_gib: float | None = None
    gpus: str | None = None  # None: the CLI's default (every visible GPU; none on a CPU machine)

    def flags(self) -> list[str]:
        flags = ["--renderer", "liveavatar", "--weights", str(self.weights), "--preset", self.preset]
        optional = {"--size": self.size, "--precision": self.precision, "--gpus": self.gpus}
        optional["--gpu-memory"] = None if self.gpu_memory_gib is None else f"{self.gpu_memory_gib:g}"
        for flag, value in optional.items():
            if value is not None:
                flags += [flag, value]
        return flags


def write_catalogue(project: Path, jobs: int, clips: int) -> Path:
    """A project like the repository (its root marked by pyproject.toml) with
    `jobs` recorded English answers for the smoke persona; the library lands in project/library."""
    (project / "questions").mkdir(parents=True)
    (project / "audio").mkdir()
    (project / "pyproject.toml").write_text("[project]\nname = 'bench'\n", encoding="utf-8")
    shutil.copytree(REPO / "assets", project / "assets")
    shutil.copytree(REPO / "prompts", project / "prompts")
    data = yaml.safe_load((REPO / "questions" / "smoke.yaml").read_text(encoding="utf-8"))
    data["entries"] = []
    for index in range(jobs):
        wav = project / "audio" / f"bench-{index}.wav"
        # A different pitch per job: distinct recordings, so distinct job ids.
        write_speech(wav, speech_s(clips), PITCHES_HZ[index % len(PITCHES_HZ)] + 3 * (index // len(PITCHES_HZ)))
        data["entries"].append(
            {
                "id": f"bench-{index}",
                "department": "info",
                "question": f"Question {index}?",
                "answer": f"Answer number {index}.",
                "audio": {"en": f"../audio/{wav.name}"},
            }
        )
    path = project / "questions" / "bench.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def render_argv(catalogue: Path, library: Path, setup: Setup, workers: int) -> list[str]:
    argv = [sys.executable, "-m", "avatar_batch", "render", str(catalogue), "--library", str(library), "--plain"]
    return argv + setup.flags() + ["--workers", str(workers)]


def finished_at_s(lines: Sequence[Line]) -> list[float]:
    """When each job ended (completed, fallback or failed), in seconds since the command started."""
    return [at for at, text in lines if FINISHED_LINE.match(text)]


def first_video_s(lines: Sequence[Line]) -> float | None:
    """When the first job rendered by the model (not a fallback still) was done."""
    done = [at for at, text in lines if (m := FINISHED_LINE.match(text)) and m.group(1) == "completed"]
    return round(done[0], 1) if done else None


def summarise(workers: int, report: dict[str, Any] | None, lines: Sequence[Line], command_s: float, stopped: bool):
    """One case's figures from its run report and its timed output lines."""
    base: dict[str, Any] = {"workers": workers, "command_s": round(command_s, 1), "stopped_at_deadline": stopped}
    if report is None:
        return {**base, "error": "no run report: " + " | ".join(text for _, text in lines[-6:])}
    rendered = [job for job in report["jobs"] if job["status"] == "completed"]
    frames = sum(int(job["telemetry"].get("frames", 0)) for job in rendered)
    wall_s = float(report["wall_s"])
    telemetry = [job["telemetry"] for job in rendered]
    return {
        **base,
        "outcome": report["outcome"],
        "jobs_completed": len(rendered),
        "jobs_failed": [
            f"{job['entry_id']}: {job['failure']}" for job in report["jobs"] if job["status"] != "completed"
        ],
        "frames": frames,
        "wall_s": wall_s,
        "frames_per_s": round(frames / wall_s, 3) if wall_s > 0 else 0.0,
        "jobs_per_min": round(60 * len(rendered) / wall_s, 3) if wall_s > 0 else 0.0,
        "first_video_s": first_video_s(lines),
        "job_finished_s": [round(at, 1) for at in finished_at_s(lines)],
        "per_worker": report["workers"],
        "generation_fps_per_job": [job.get("generation_fps") for job in telemetry],
        "load_s_per_job": [job.get("load_s") for job in telemetry],
        "peak_gpu_gib": report["resources"]["peak_gpu_gib"],
        "placements": report["resources"]["placements"],
    }


def compare(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Speed-up of the second case over the first, on each figure both have."""
    ratios: dict[str, Any] = {}
    for key in ("frames_per_s", "jobs_per_min"):
        if first.get(key) and second.get(key):
            ratios[f"{key}_ratio"] = round(second[key] / first[key], 3)
    return ratios


class Command:
    """A render command run in its own session (so SIGTERM reaches its workers
    too), each output line printed and kept with its time."""

    def __init__(self, argv: list[str], env: dict[str, str], label: str):
        self.label, self.lines = label, list[Line]()
        self.started_s = time.perf_counter()
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            at = time.perf_counter() - self.started_s
            for text in raw.rstrip("\n").split("\r"):  # progress bars redraw with \r
                if text.strip():
                    self.lines.append((at, text))
                    print(f"[{self.label} {at:7.1f} s] {text}", flush=True)

    def wait(self, limit_s: float) -> bool:
        """Wait up to `limit_s`; past it, stop the run as Ctrl-C does. True if it had to be stopped."""
        try:
            self.process.wait(timeout=max(1.0, limit_s))
            stopped = False
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            stopped = True
        self._reader.join(timeout=5)
        return stopped

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started_s


def case_limit_s(left_s: float, cases_left: int) -> float:
    """An equal share of the time left, less the grace a stopped case takes to
    end: a slow first case still leaves the second its turn before the deadline."""
    return (left_s - STOP_GRACE_S) / cases_left


def run_case(catalogue: Path, library: Path, setup: Setup, workers: int, scratch: Path, limit_s: float):
    env = dict(os.environ)
    env["TORCHINDUCTOR_CACHE_DIR"] = str(scratch / f"compile-cache-{workers}")  # no kernels from the other case
    env["PYTHONUNBUFFERED"] = "1"
    argv = render_argv(catalogue, library, setup, workers)
    print(f"--- {workers} worker(s), at most {limit_s:.0f} s: {' '.join(argv[1:])}", flush=True)
    command = Command(argv, env, f"{workers}w")
    stopped = command.wait(limit_s)
    reports = sorted((library / "runs").glob("*.json")) if (library / "runs").is_dir() else []
    report = json.loads(reports[-1].read_text(encoding="utf-8")) if reports else None
    return summarise(workers, report, command.lines, command.seconds, stopped)


def frame_hashes(library: Path) -> dict[str, str]:
    """Job id -> sha256 of its video's decoded frames, for every completed job."""
    from tests.cli.workers_fixtures import library_fingerprint

    if not (library / "manifest.json").is_file():
        return {}
    return {job_id: digest for _, _, job_id, status, digest in library_fingerprint(library) if status == "completed"}


def same_frames(first: dict[str, str], second: dict[str, str]) -> dict[str, Any]:
    """Whether the videos both cases finished decode to the same frames (a
    case stopped at the deadline finished fewer)."""
    common = sorted(first.keys() & second.keys())
    different = [job_id for job_id in common if first[job_id] != second[job_id]]
    return {"compared": len(common), "identical": not different if common else None, "different": different}


def device_name() -> str:
    import torch  # after the cases: this process never held the GPU while they ran

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (torch {torch.__version__})"
    return f"{os.cpu_count()}-core CPU (torch {torch.__version__})"


def document(args: argparse.Namespace, setup: Setup, runs: list[dict[str, Any]], same: dict[str, Any] | None) -> dict:
    return {
        "command": "python -m benchmarks.workers_speed " + " ".join(sys.argv[1:]),
        "date": f"{datetime.now(UTC):%Y-%m-%d}",
        "model": f"checkpoint {setup.weights}, preset {setup.preset}",
        "flags": setup.flags(),
        "jobs": args.jobs,
        "clips_per_job": args.clips,
        "load_average_end": round(os.getloadavg()[0], 1),
        "runs": runs,
        "two_vs_one": compare(runs[0], runs[1]) if len(runs) == 2 else {},
        "frames": same,
    }


def print_table(runs: list[dict[str, Any]]) -> None:
    print("workers  jobs  frames  wall_s  frames/s  jobs/min  first_video_s  busy_s (utilisation) per worker")
    for run in runs:
        if "error" in run:
            print(f"{run['workers']:7}  ERROR {run['error'][:300]}")
            continue
        busy = ", ".join(f"{w['worker']} {w['busy_s']:.0f} ({w['utilisation']:.2f})" for w in run["per_worker"])
        print(
            f"{run['workers']:7}  {run['jobs_completed']:4}  {run['frames']:6}  {run['wall_s']:6.1f}  "
            f"{run['frames_per_s']:8.2f}  {run['jobs_per_min']:8.2f}  {run['first_video_s']!s:>13}  {busy}"
        )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--weights", type=Path, help="checkpoint folder (default: a tiny one, written here)")
    parser.add_argument("--jobs", type=int, default=2, help="recorded answers to render")
    parser.add_argument("--clips", type=int, default=1, help="48-frame clips per answer")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--size", help="e.g. 384*256 (default: the preset's)")
    parser.add_argument("--precision", choices=("bf16", "fp8"))
    parser.add_argument("--gpu-memory", type=float, help="GiB each worker plans for (two share one GPU)")
    parser.add_argument("--gpus", help="as render's --gpus, e.g. 0 (default: the CLI's)")
    parser.add_argument("--deadline-s", type=float, default=3600.0, help="stop everything this long after start")
    parser.add_argument("--out", type=Path, help="result JSON (default: benchmarks/results/workers-<date>.json)")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.clips < 1:
        parser.error("--jobs and --clips must be at least 1")
    return args


def main() -> None:
    began_s = time.perf_counter()
    args = parse_args()
    out = args.out or RESULTS / f"workers-{datetime.now(UTC):%Y%m%d}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    same: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="workers-bench-") as tmp:
        scratch = Path(tmp)
        weights = args.weights
        if weights is None:
            weights = scratch / "weights"
            subprocess.run([sys.executable, "-m", "avatar_batch", "weights", "tiny", str(weights)], check=True)
        setup = Setup(weights, args.preset, args.size, args.precision, args.gpu_memory, args.gpus)
        catalogue = write_catalogue(scratch / "project", args.jobs, args.clips)
        for workers in WORKER_COUNTS:
            left_s = args.deadline_s - (time.perf_counter() - began_s)
            if left_s < MIN_CASE_S:
                runs.append({"workers": workers, "error": f"not run: {left_s:.0f} s left before --deadline-s"})
                continue
            limit_s = case_limit_s(left_s, len(WORKER_COUNTS) - len(runs))
            runs.append(run_case(catalogue, scratch / f"library-{workers}", setup, workers, scratch, limit_s))
            out.write_text(json.dumps(document(args, setup, runs, same), indent=2) + "\n", encoding="utf-8")
        try:
            same = same_frames(*(frame_hashes(scratch / f"library-{workers}") for workers in WORKER_COUNTS))
        except Exception as exc:  # noqa: BLE001 - kept in the result beside the timings it does not invalidate
            same = {"error": f"{exc.__class__.__name__}: {exc}"}
            print(f"frame comparison failed: {same['error']}", flush=True)
    result = {"device": device_name(), **document(args, setup, runs, same)}
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print_table(runs)
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
    print(f"wrote {out} ({time.perf_counter() - began_s:.0f} s)")


if __name__ == "__main__":
    main()
