"""End-to-end Live Avatar speed under GPU memory budgets, through the real renderer.

Each case runs in its own process (a crash or an out-of-memory in one case does
not end the others, and every case starts with a fresh CUDA allocator):

1. the budget is emulated with `torch.cuda.set_per_process_memory_fraction`
   and passed to the planner as `--gpu-memory` would be;
2. `open_renderer(settings)` loads the official-layout checkpoint from disk
   (safetensors shards, LoRA merge, placement), umT5 and wav2vec2 run on real
   inputs (a portrait and a 16 kHz speech WAV), the DiT samples and the VAE
   decodes — the path `avatar-batch render --renderer liveavatar` takes, minus
   the TTS and the H.264 encode (no ffmpeg on the GPU machine);
3. a warm-up job of the measured job's shape pays the compile: `first_video_s`
   is from the start of the case to its last frame, load included, and
   `process_first_video_s` from the start of the process (imports too); the
   measured job's `generation_fps` (sampling + decode) is the steady state, and
   its `real_time_factor` that rate over the 25 fps the video plays at.

Warm start: `--compile-cache DIR` keeps the compiled kernels there, so a second
call with the same DIR starts warm; `--cold-then-warm` runs every case twice
in fresh processes on an emptied cache folder, and reports both first videos
(`compile_cache` says which run was which). With a compile cache, every process
gets an empty TORCHINDUCTOR_CACHE_DIR, so only the cache file can make it warm.

`--profile` adds cProfile's top host functions of the first video (load and warm-up
job) and of the measured job (`benchmarks/host_profile.py`): what the host waited in.

`--ops` profiles the warm-up job (load included) and one more job after the measured
one with torch.profiler's CPU activity, and adds the operators whose own host time the
first job exceeds the later one's by most (`benchmarks/op_profile.py`): what a warm
start pays beyond dynamo's tracing. It slows both jobs, so read `first_video_s` of such
a run as an upper bound.

`--timeline` traces one more job per case after the measured one and adds where
its GPU time went: kernels busy, host-to-GPU copies busy, how much of the copying
ran under kernels, idle time, and the top kernels (`benchmarks/timeline.py`).

Usage (GPU machine):
    python -m benchmarks.render_offload --weights /tmp/w14b --write-random \
        --cases 704*384:4:bf16:none 704*384:4:bf16:48 ... --clips 3 --out results.json
    python -m benchmarks.render_offload --weights /tmp/w14b --cases 704*384:4:bf16:none --cold-then-warm
A case is SIZE:STEPS:PRECISION:BUDGET_GIB (`none` = the whole GPU)[:WEIGHT_FORMAT[:KV_FORMAT[:OFFLOAD[:graphs]]]]
(defaults auto, bf16, auto: `704*384:4:bf16:48:int8:fp8` stores the DiT's weights in int8
and its KV caches in fp8; `704*384:4:bf16:none:auto:bf16:model` lends the helpers on the
whole GPU; `704*384:4:fp8:none:auto:bf16:auto:graphs` replays the layer passes as CUDA
graphs, and runs a second warm-up job, where the graphs are recorded, before the measured
one). A case's ratio is to the run of the same size, steps and precision on the
whole GPU with the defaults.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from avatar_batch.core.bytecode import heavy_imports_state
from avatar_batch.core.records import VIDEO_FPS
from benchmarks.host_profile import profiled
from benchmarks.op_profile import first_use_costs, op_seconds

T = TypeVar("T")
PROCESS_STARTED_S = time.perf_counter()  # before torch is imported: a user's first video counts that too
REPO = Path(__file__).resolve().parents[1]
PORTRAIT = REPO / "assets" / "dr_chen.png"
PROMPT = "A doctor in a white coat speaks warmly to the camera in a bright clinic."
SAMPLE_RATE_HZ = 16_000
FRAMES_PER_CLIP = 48


def write_speech(path: Path, duration_s: float, pitch_hz: float = 140.0) -> None:
    """A syllable-rate amplitude-modulated voiced tone: wav2vec2 sees speech-like energy."""
    t = np.arange(int(duration_s * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    voiced = sum(np.sin(2 * np.pi * pitch_hz * harmonic * t) / 2 ** (harmonic - 1) for harmonic in (1, 2, 3))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 4.0 * t))  # ~4 syllables a second
    samples = (0.3 * voiced * envelope * 32767 / 1.75).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE_HZ)
        out.writeframes(samples.tobytes())


def parse_case(text: str) -> dict[str, Any]:
    parts = text.split(":")
    size, steps, precision, budget = parts[:4]
    return {
        "size": size,
        "steps": int(steps),
        "precision": precision,
        "budget_gib": None if budget == "none" else float(budget),
        "weight_format": parts[4] if len(parts) > 4 else "auto",
        "kv_format": parts[5] if len(parts) > 5 else "bf16",
        "offload_asked": parts[6] if len(parts) > 6 else "auto",
        "cuda_graphs": len(parts) > 7 and parts[7] == "graphs",
    }


def write_portrait(size: str, out: Path) -> Path:
    """The persona portrait cropped to the size's aspect and scaled to it, so '704*384'
    renders 704x384 (a square portrait would render 512x512: the same area, other caches)."""
    from PIL import Image

    from avatar_batch.core.settings import parse_size

    width_px, height_px = parse_size(size)
    with Image.open(PORTRAIT) as image:
        rgb = image.convert("RGB")
    scale = max(width_px / rgb.width, height_px / rgb.height)
    resized = rgb.resize((math.ceil(rgb.width * scale), math.ceil(rgb.height * scale)), Image.Resampling.LANCZOS)
    left, top = (resized.width - width_px) // 2, (resized.height - height_px) // 2
    resized.crop((left, top, left + width_px, top + height_px)).save(out)
    return out


def speech_s(clips: int, frames_per_clip: int = FRAMES_PER_CLIP) -> float:
    """Seconds of speech that make exactly `clips` clips: 0.1 s short of that many whole
    clips, so no further, silent clip is added."""
    return clips * frames_per_clip / VIDEO_FPS - 0.1


def job_request(job_id: str, wav: Path, portrait: Path, clips: int, settings):
    """A request whose speech (written to `wav`) makes exactly `clips` clips of the settings' length."""
    from avatar_batch.core.records import RenderRequest, SpeechTrack

    duration_s = speech_s(clips, settings.frames_per_clip)
    write_speech(wav, duration_s)
    speech = SpeechTrack(wav, wav, duration_s, -16.0, (), wav, wav, "recording")
    return RenderRequest(job_id, portrait, PROMPT, speech, replace(settings, num_clip=clips))


def allocator_stats() -> dict[str, Any]:
    """What the CUDA allocator went through: retries mean it freed its cache under
    pressure (a synchronisation each), which a budget close to the peak causes."""
    import torch

    if not torch.cuda.is_available():
        return {}
    stats = torch.cuda.memory_stats()
    return {
        "alloc_retries": stats.get("num_alloc_retries", 0),
        "device_allocs": stats.get("num_device_alloc", 0),
        "peak_reserved_gib": round(stats.get("reserved_bytes.all.peak", 0) / 2**30, 2),
    }


def _run_job(renderer, request) -> dict[str, Any]:
    stream = renderer.start(request)
    frames = sum(1 for _ in stream)
    return {**stream.telemetry(), "frames_out": frames}


def traced_job(renderer, request) -> dict[str, Any]:
    """One more job under the profiler (GPU activity only): where its time went
    (`benchmarks/timeline.py`). Run after the measured job, so the trace costs it nothing."""
    from torch.profiler import ProfilerActivity, profile

    from benchmarks.timeline import gpu_intervals, summarise, top_kernels

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        _run_job(renderer, request)
    events = prof.events()
    return {**summarise(*gpu_intervals(events)), "top_kernels": top_kernels(events)}


def compile_seconds() -> dict[str, float]:
    """Seconds this process spent in each of dynamo's timed compile stages (tracing, the
    inductor and AOTAutograd cache lookups, code generation...): what a warm start still pays."""
    from torch._dynamo.utils import compilation_time_metrics

    return {name: round(sum(values), 2) for name, values in compilation_time_metrics.items()}


def run_case(
    case: dict[str, Any],
    weights: Path,
    clips: int,
    scratch: Path,
    compile_cache: str | None = None,
    timeline: bool = False,
    profile: bool = False,
    ops: bool = False,
) -> dict[str, Any]:
    """One case in this process: budget, load, warm-up job, measured job (and a traced one)."""
    import torch

    from avatar_batch.core.records import RenderSettings
    from avatar_batch.render import open_renderer

    started_s = time.perf_counter()
    on_gpu = torch.cuda.is_available()
    if on_gpu and case["budget_gib"] is not None:
        total_gib = torch.cuda.get_device_properties(0).total_memory / 2**30
        torch.cuda.set_per_process_memory_fraction(min(1.0, case["budget_gib"] / total_gib))
    settings = RenderSettings(
        renderer="liveavatar",
        preset="high",
        size=case["size"],
        sample_steps=case["steps"],
        precision=case["precision"],
        weight_format=case["weight_format"],
        kv_format=case["kv_format"],
        gpu_memory_gib=case["budget_gib"],
        offload=case["offload_asked"],
        weights_dir=str(weights),
        compile_cache_dir=compile_cache,
        cuda_graphs=case["cuda_graphs"],
    )
    portrait = write_portrait(case["size"], scratch / f"portrait-{case['size'].replace('*', 'x')}.png")

    op_times: dict[str, dict[str, dict[str, float]]] = {}  # "first" and "later" jobs, with --ops

    def first_video() -> tuple[Any, dict[str, Any]]:
        renderer = open_renderer(settings)
        renderer.identity()  # refuses, before loading, a run no placement fits
        # The warm-up has the measured job's shape, so every graph the measured job runs is compiled.
        warm_up = job_request("warm-up", scratch / "warm.wav", portrait, clips, settings)
        if not ops:
            return renderer, _run_job(renderer, warm_up)
        warm, op_times["first"] = op_seconds(lambda: _run_job(renderer, warm_up))
        return renderer, warm

    def measured_job() -> dict[str, Any]:
        return _run_job(renderer, job_request("measured", scratch / "measured.wav", portrait, clips, settings))

    profiles: dict[str, Any] = {}

    def run(name: str, work: Callable[[], T]) -> T:
        if not profile:
            return work()
        result, profiles[name] = profiled(work)
        return result

    renderer, warm = run("first_video", first_video)
    first_video_s = time.perf_counter() - started_s
    process_first_video_s = time.perf_counter() - PROCESS_STARTED_S
    capture_job = None
    if case["cuda_graphs"]:  # a wave is recorded the second time its signature comes: a second job
        capture_job = _run_job(renderer, job_request("capture", scratch / "capture.wav", portrait, clips, settings))
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    measured = run("measured_job", measured_job)
    allocator = allocator_stats()
    frames = measured["frames_out"]
    traced = None
    if timeline and on_gpu:
        traced = traced_job(renderer, job_request("traced", scratch / "traced.wav", portrait, clips, settings))
    if ops:
        later = job_request("later", scratch / "later.wav", portrait, clips, settings)
        _, op_times["later"] = op_seconds(lambda: _run_job(renderer, later))
    renderer.close()
    placement = measured.get("placement") or {}
    return {
        **case,
        "device": torch.cuda.get_device_name(0) if on_gpu else "cpu",
        "offload": placement.get("offload"),
        "placement": placement,
        "fps": measured["generation_fps"],
        "real_time_factor": measured["real_time_factor"],
        "first_video_s": round(first_video_s, 1),
        "process_first_video_s": round(process_first_video_s, 1),
        "compile_cache": warm["compile_cache"],
        "load_s": warm["load_s"],
        **({"capture_job_fps": capture_job["generation_fps"]} if capture_job else {}),
        "warm_up_phases_s": {name: warm[name] for name in ("load_s", "text_s", "audio_s", "sampling_s", "decode_s")},
        "load_parts_s": warm.get("load_parts_s"),
        "compile_s": compile_seconds(),
        "peak_gpu_gib": round(max(warm["peak_gpu_gib"], measured["peak_gpu_gib"]), 2),
        "expected_peak_gpu_gib": measured.get("expected_peak_gpu_gib"),
        "peak_rss_gib": round(max(warm["peak_rss_gib"], measured["peak_rss_gib"]), 2),
        "h2d_gib_per_frame": round(measured.get("h2d_gib", 0.0) / max(1, frames), 4),
        "frames": frames,
        "allocator": allocator,
        "measured_telemetry": measured,
        **({"timeline": traced} if traced is not None else {}),
        **({"host_profile": profiles} if profiles else {}),
        **({"first_job_ops": first_use_costs(op_times["first"], op_times["later"])} if op_times else {}),
    }


def _child(args: argparse.Namespace) -> None:
    scratch = Path(args.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    case = parse_case(args.one)
    result = run_case(
        case, Path(args.weights), args.clips, scratch, args.compile_cache, args.timeline, args.profile, args.ops
    )
    Path(args.result).write_text(json.dumps(result, default=str), encoding="utf-8")


def _parent(args: argparse.Namespace) -> None:
    weights = Path(args.weights)
    if args.write_random and not (weights / "LiveAvatar").is_dir():
        from avatar_batch.render.liveavatar.checkpoint.random_weights import write_random_checkpoint
        from avatar_batch.render.liveavatar.config import CONFIG_14B

        began = time.perf_counter()
        write_random_checkpoint(weights, CONFIG_14B)
        print(f"wrote the random 14b checkpoint in {time.perf_counter() - began:.0f} s", flush=True)
    runs: list[dict[str, Any]] = []
    began_all = time.perf_counter()
    for index, text, cache in _passes(args):
        left_s = args.deadline_s - (time.perf_counter() - began_all)
        if left_s < 60:  # a case needs a load and a compile: leave the rest for another call
            runs.append({**parse_case(text), "error": "not run: out of time in this call"})
            continue
        began = time.perf_counter()
        runs.append(_run_child(args, text, index, cache, left_s))
        run = runs[-1]
        first = f", first video {run['first_video_s']} s ({run['compile_cache']})" if "first_video_s" in run else ""
        print(f"{text}: {run.get('fps', run.get('error'))}{first} ({time.perf_counter() - began:.0f} s)", flush=True)
        Path(args.out).write_text(json.dumps(_document(args, runs), indent=2), encoding="utf-8")
    Path(args.out).write_text(json.dumps(_document(args, runs), indent=2), encoding="utf-8")
    _print_table(runs)


def _passes(args: argparse.Namespace) -> list[tuple[int, str, str | None]]:
    """(index, case, compile-cache folder) per child process: each case once, or twice on
    a folder emptied first (`--cold-then-warm`: the second process finds the first's kernels)."""
    if not args.cold_then_warm:
        return [(index, text, args.compile_cache) for index, text in enumerate(args.cases)]
    passes: list[tuple[int, str, str | None]] = []
    for index, text in enumerate(args.cases):
        folder = Path(args.compile_cache or Path(args.scratch) / "compile-cache") / f"case{index}"
        shutil.rmtree(folder, ignore_errors=True)
        passes += [(index, text, str(folder)), (index, text, str(folder))]
    return passes


def _run_child(args: argparse.Namespace, text: str, index: int, cache: str | None, left_s: float) -> dict[str, Any]:
    result_path = Path(args.scratch) / f"case{index}.json"
    argv = [sys.executable, "-m", "benchmarks.render_offload", "--one", text, "--weights", args.weights]
    argv += ["--clips", str(args.clips), "--scratch", args.scratch, "--result", str(result_path)]
    argv += ["--timeline"] if args.timeline else []
    argv += ["--profile"] if args.profile else []
    argv += ["--ops"] if args.ops else []
    env = dict(os.environ)
    if cache:  # torch's own on-disk caches would make a "cold" run warm: a fresh one per process
        argv += ["--compile-cache", cache]
        env["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-", dir=args.scratch)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=left_s, check=False, env=env)
    except subprocess.TimeoutExpired:
        return {**parse_case(text), "error": f"timed out after {left_s:.0f} s"}
    if done.returncode == 0:
        return json.loads(result_path.read_text(encoding="utf-8"))
    tail = (done.stderr or done.stdout).strip().splitlines()[-6:]
    return {**parse_case(text), "error": " | ".join(tail)}


def _document(args: argparse.Namespace, runs: list[dict[str, Any]]) -> dict[str, Any]:
    import torch

    device = next((r["device"] for r in runs if "device" in r), "unknown")  # the parent never opens CUDA
    command = "python -m benchmarks.render_offload " + " ".join(sys.argv[1:])
    for run in runs:  # ratio to the unconstrained run of the same case
        base = next(
            (
                r
                for r in runs
                if r.get("budget_gib") is None
                and (r.get("weight_format"), r.get("kv_format", "bf16"), r.get("offload_asked", "auto"))
                == ("auto", "bf16", "auto")
                and not r.get("cuda_graphs")
                and "fps" in r
                and (r["size"], r["steps"], r["precision"]) == (run["size"], run["steps"], run["precision"])
            ),
            None,
        )
        if base and "fps" in run:
            run["ratio_to_unconstrained"] = round(run["fps"] / base["fps"], 3)
    return {
        "device": device,
        "torch": torch.__version__,
        "command": command,
        # Imports compile from source without bytecode (~10 s of a first video): say which it was.
        "python_bytecode": [
            {"package": state.package, "modules": state.modules, "without_bytecode": state.without_bytecode}
            for state in heavy_imports_state()
        ],
        "runs": runs,
    }


def _print_table(runs: list[dict[str, Any]]) -> None:
    print(
        "size     steps prec budget w/kv      offload  fps    rt     ratio  first_s cache load_s peakGPU rss   h2d/frame"
    )
    for r in runs:
        if "error" in r:
            print(f"{r['size']:8} {r['steps']:5} {r['precision']:4} {r['budget_gib']!s:6} ERROR {r['error'][:200]}")
            continue
        print(
            f"{r['size']:8} {r['steps']:5} {r['precision']:4} {r['budget_gib']!s:6} "
            f"{r['weight_format'] + '/' + r.get('kv_format', 'bf16'):9} {r['offload']!s:8} "
            f"{r['fps']:6.2f} {r['real_time_factor']:6.3f} {r.get('ratio_to_unconstrained', math.nan):6.3f} "
            f"{r['first_video_s']:7.1f} {r.get('compile_cache', '-')!s:5} "
            f"{r['load_s']:6.1f} {r['peak_gpu_gib']:7.2f} {r['peak_rss_gib']:5.1f} {r['h2d_gib_per_frame']:.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True)
    parser.add_argument("--write-random", action="store_true", help="write a random 14b checkpoint there first")
    parser.add_argument("--cases", nargs="+", default=["704*384:4:bf16:none"])
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--scratch", default=os.environ.get("TMPDIR", "/tmp") + "/render_offload")
    parser.add_argument("--out", default="render_offload.json")
    parser.add_argument("--deadline-s", type=float, default=3600, help="start no case after this many seconds")
    parser.add_argument("--compile-cache", help="keep compiled kernels in DIR (a later call starts warm)")
    parser.add_argument("--cold-then-warm", action="store_true", help="run each case cold, then warm")
    parser.add_argument(
        "--timeline", action="store_true", help="trace one more job per case: kernels and copies, and their overlap"
    )
    parser.add_argument("--profile", action="store_true", help="add cProfile's top host functions per case")
    parser.add_argument("--ops", action="store_true", help="add the operators a first job spends extra host time in")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    Path(args.scratch).mkdir(parents=True, exist_ok=True)
    (_child if args.one else _parent)(args)


if __name__ == "__main__":
    main()
