"""Memory over one very long Live Avatar job: is it flat over 1,000 clips, sink refresh on and off?

    python -m benchmarks.long_render_memory [--clips 1000] [--size 64*64] [--frames-per-clip 12]
                                            [--weights DIR] [--cases on off]

Each case (`on`: `sink_refresh`, `off`: without) renders ONE job of `--clips`
clips with the tiny checkpoint (`weights tiny`, written into a temporary folder
unless `--weights` names one) through the real renderer, as `render
--renderer liveavatar --preset quick` does minus TTS and H.264: `open_renderer`
→ `start(request)` → pull every frame. Frames are counted and dropped, never
kept. After every clip the child samples the process's resident memory (VmRSS)
and, on CUDA, `torch.cuda.memory_allocated`. Each case runs in its own process,
so one case's allocator never colours the other's figures; the cases run side
by side (one torch thread each: on a shared, oversubscribed 2-core machine
OpenMP threads spinning against each other made a clip 5x slower).

Writes benchmarks/results/long-render-<yyyymmdd>.json: per case, every 10th
sample, and over the clips after the first tenth (conditioning, the refresh
and the allocator's warm-up are over by then) the min, max and least-squares
slope of RSS. A leak of 1 KiB a clip shows as a slope of 1 KiB/clip, which the
noise of a flat run (a few KiB over hundreds of clips) does not.

Clip length: the quick preset's 48 frames need 1,000 x 1.92 s = 32 min of
speech, and the audio encoder attends over the whole answer at once (quadratic
in its length: 2 s for 1 min and 23 s for 4 min of speech with the tiny
wav2vec2 here, so about 25 CPU-minutes for 32 min). 12-frame clips (one block
each, the smallest the model allows) keep the 1,000 clip boundaries, the
per-clip noise draws and the wrap of every step cache's window (one clip long,
so one block here) at a quarter of the speech. `--clips 250 --frames-per-clip 48`
runs the preset's clip shape (4 blocks a clip, a 12-latent window) over as many blocks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.render_offload import PORTRAIT, job_request

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
PROC_STATUS = Path("/proc/self/status")
KEEP_EVERY = 10  # clips between the samples written to the result
WARM_UP_FRACTION = 10  # the first 1/10 of the clips are left out of the summary
# The fitted line may rise at most this much over the summarised clips for a case to count as flat.
FLAT_GROWTH_BYTES = 4 * 2**20

# --- pure helpers (tests/test_long_render_benchmark.py) ---------------------------------------


def vm_rss_bytes(status_text: str) -> int:
    """Resident memory from the text of /proc/<pid>/status (its `VmRSS:  N kB` line)."""
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ValueError("no VmRSS line in the status text: is this /proc/<pid>/status of a Linux process?")


def slope_per_clip(values: list[int] | list[float]) -> float:
    """Least-squares slope of `values` against their index (units of a value per clip)."""
    n = len(values)
    if n < 2:
        raise ValueError(f"a slope needs at least 2 samples, got {n}")
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    covariance = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(values))
    variance = sum((x - mean_x) ** 2 for x in range(n))
    return covariance / variance


def summarise(series: list[int], first_clip: int) -> dict[str, Any]:
    """min / max / slope (bytes per clip) of `series` (one sample per clip, clip 1 first) from
    clip `first_clip` on, and the growth of the fitted line over those clips."""
    tail = series[first_clip - 1 :]
    slope = slope_per_clip(tail)
    growth = slope * (len(tail) - 1)
    return {
        "from_clip": first_clip,
        "clips": len(tail),
        "min_mib": round(min(tail) / 2**20, 2),
        "max_mib": round(max(tail) / 2**20, 2),
        "slope_kib_per_clip": round(slope / 1024, 3),
        "fitted_growth_mib": round(growth / 2**20, 3),
        "flat": abs(growth) < FLAT_GROWTH_BYTES,
    }


def every_nth(series: list[int], n: int = KEEP_EVERY) -> list[list[int]]:
    """[clip, value] for clip 1, then every n-th clip, and the last clip (clips count from 1)."""
    kept = [[clip, value] for clip, value in enumerate(series, start=1) if clip == 1 or clip % n == 0]
    if kept[-1][0] != len(series):
        kept.append([len(series), series[-1]])
    return kept


def machine_facts() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    return {"cpu": cpu, "cores": os.cpu_count(), "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()]}


# --- one case, in its own process ---------------------------------------------------------------


@dataclass
class ClipSamples:
    """One sample per whole clip, clip 1 first, in arrays sized before the job: a list
    of Python numbers would grow by about 70 bytes a clip, the benchmark's own leak."""

    rss_bytes: array
    gpu_allocated_bytes: array  # CUDA only
    at_s: array  # since the first frame was asked for
    count: int = 0
    frames: int = 0

    @classmethod
    def sized(cls, clips: int) -> ClipSamples:
        return cls(array("q", bytes(8 * clips)), array("q", bytes(8 * clips)), array("d", bytes(8 * clips)))

    def series(self, values: array) -> list[int]:
        return [int(v) for v in values[: self.count]]


def pull_sampling_each_clip(
    stream, frames_per_clip: int, clips: int, gpu_allocated: Callable[[], int] | None
) -> ClipSamples:
    """Pull every frame of `stream`, dropping each (the benchmark keeps none), and sample
    memory after each whole clip. The last clip ends with the speech, short of a whole
    clip, so it has no sample: once the stream is exhausted its caches are freed, which
    is no figure of the loop's."""
    samples = ClipSamples.sized(clips)
    began = time.perf_counter()
    for _frame in stream:
        samples.frames += 1
        if samples.frames % frames_per_clip:
            continue
        index = samples.count
        samples.at_s[index] = time.perf_counter() - began
        samples.rss_bytes[index] = vm_rss_bytes(PROC_STATUS.read_text(encoding="ascii"))
        if gpu_allocated is not None:
            samples.gpu_allocated_bytes[index] = gpu_allocated()
        samples.count += 1
    return samples


def run_case(refresh: bool, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from avatar_batch.core.records import RenderSettings
    from avatar_batch.core.settings import preset_fields
    from avatar_batch.render import open_renderer

    torch.set_num_threads(args.threads)
    settings = RenderSettings(renderer="liveavatar", weights_dir=str(args.weights), **preset_fields("quick"))
    settings = replace(settings, size=args.size, frames_per_clip=args.frames_per_clip, sink_refresh=refresh)
    renderer = open_renderer(settings)
    wav = Path(args.scratch) / "speech.wav"
    request = job_request(f"long-{'on' if refresh else 'off'}", wav, PORTRAIT, args.clips, settings)
    on_gpu = torch.cuda.is_available()
    began = time.perf_counter()
    stream = renderer.start(request)  # loads the networks (first job) and conditions the job
    start_s = time.perf_counter() - began
    gpu_allocated = torch.cuda.memory_allocated if on_gpu else None
    samples = pull_sampling_each_clip(stream, args.frames_per_clip, args.clips, gpu_allocated)
    job_s = time.perf_counter() - began
    rss_after_job = vm_rss_bytes(PROC_STATUS.read_text(encoding="ascii"))
    telemetry = stream.telemetry()
    renderer.close()
    rss, at_s = samples.series(samples.rss_bytes), list(samples.at_s[: samples.count])
    first = max(2, len(rss) // WARM_UP_FRACTION + 1)
    result = {
        "sink_refresh": refresh,
        "clips": telemetry["num_clips"],
        "clips_sampled": len(rss),
        "frames": samples.frames,
        "device": torch.cuda.get_device_name(0) if on_gpu else "cpu",
        "torch_threads": torch.get_num_threads(),
        "job_s": round(job_s, 1),
        "start_s": round(start_s, 1),  # load and conditioning
        "first_clip_s": round(at_s[0], 1),
        "clips_per_s_summarised": round((len(rss) - first) / (at_s[-1] - at_s[first - 1]), 3),
        "rss_summary": summarise(rss, first),
        "rss_mib_every_10th": [[clip, round(value / 2**20, 2)] for clip, value in every_nth(rss)],
        "rss_after_job_mib": round(rss_after_job / 2**20, 2),
        "telemetry": {k: v for k, v in telemetry.items() if k != "placement"},
    }
    if on_gpu:
        gpu = samples.series(samples.gpu_allocated_bytes)
        result["gpu_allocated_summary"] = summarise(gpu, first)
        result["gpu_allocated_mib_every_10th"] = [[clip, round(v / 2**20, 2)] for clip, v in every_nth(gpu)]
    return result


# --- the parent: cases side by side, one result file -------------------------------------------


def _child_argv(case: str, args: argparse.Namespace, result: Path, scratch: Path) -> list[str]:
    argv = [sys.executable, "-m", "benchmarks.long_render_memory", "--one", case, "--result", str(result)]
    argv += ["--weights", str(args.weights), "--scratch", str(scratch), "--clips", str(args.clips)]
    argv += ["--size", args.size, "--frames-per-clip", str(args.frames_per_clip), "--threads", str(args.threads)]
    return argv


def run_cases(args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    running = []
    for case in args.cases:
        scratch = root / case
        scratch.mkdir(parents=True, exist_ok=True)
        result = scratch / "result.json"
        log = (scratch / "log.txt").open("w")
        running.append(
            (case, result, log, subprocess.Popen(_child_argv(case, args, result, scratch), stdout=log, stderr=log))
        )
    runs = []
    for case, result, log, process in running:
        code = process.wait()
        log.close()
        if code != 0:
            tail = (result.parent / "log.txt").read_text(errors="replace").strip().splitlines()[-8:]
            raise SystemExit(f"case {case} failed (exit {code}):\n" + "\n".join(tail))
        runs.append(json.loads(result.read_text(encoding="utf-8")))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=1000)
    parser.add_argument("--size", default="64*64", help="area of the video (the tiny model at 64x64 px)")
    parser.add_argument("--frames-per-clip", type=int, default=12, help="a multiple of 12 (the quick preset: 48)")
    parser.add_argument("--cases", nargs="+", choices=("on", "off"), default=["on", "off"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads per case")
    parser.add_argument("--weights", type=Path, help="tiny checkpoint (default: written into a temporary folder)")
    parser.add_argument("--out", type=Path, help="default: benchmarks/results/long-render-<yyyymmdd>.json")
    parser.add_argument("--one", choices=("on", "off"), help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        args.scratch.mkdir(parents=True, exist_ok=True)
        args.result.write_text(json.dumps(run_case(args.one == "on", args)), encoding="utf-8")
        return
    machine_at_start = machine_facts()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="long-render-") as tmp:
        root = Path(tmp)
        if args.weights is None:
            from avatar_batch.render.liveavatar.checkpoint import write_tiny_checkpoint

            args.weights = root / "weights"
            write_tiny_checkpoint(args.weights)
        runs = run_cases(args, root)
    document = {
        "command": "python -m benchmarks.long_render_memory " + " ".join(sys.argv[1:]),
        "machine": {**machine_at_start, "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "model": f"tiny Live Avatar checkpoint (weights tiny), preset quick at {args.size}, "
        f"{args.frames_per_clip} frames per clip",
        "wall_s": round(time.perf_counter() - began, 1),
        "runs": runs,
    }
    out = args.out or RESULTS / f"long-render-{datetime.now(UTC):%Y%m%d}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    for run in runs:
        print(f"sink_refresh={run['sink_refresh']}: {run['clips_per_s_summarised']} clips/s, RSS {run['rss_summary']}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
