"""Live Avatar render speed at the real 14B architecture, on one GPU.

    PYTHONPATH=src python -m benchmarks.render_speed --cases 704*384:4 688*368:4 384*256:3 --clips 3

Builds the `14b` DiT and the full-size Wan2.1 VAE with random weights directly
on the GPU (the compute is identical to the released weights), conditions one
job (random text states and wav2vec2 features stand in for umT5 and wav2vec2,
which run once per job, not per frame), then pulls frames through the real
sampler and streaming decoder into an H.264 encoder when ffmpeg is on PATH.
Steady-state FPS counts the clips after the first, and `real_time_factor` is
that rate over the 25 fps the video plays at; `first_clip_s` is from the
start of the case (model build, caches, warm-up/compile) to the first clip's
last frame. Results: benchmarks/results/<gpu>-<yyyymmdd>.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch

from avatar_batch.render.geometry import size_for
from avatar_batch.render.liveavatar.conditioning import Conditioning, motion_latents, reference_latent
from avatar_batch.render.liveavatar.config import CONFIG_14B, CONFIG_TINY, VaeSizes
from avatar_batch.render.liveavatar.dit import CausalS2VDiT
from avatar_batch.render.liveavatar.dit.compiled import compile_blocks, compile_stats
from avatar_batch.render.liveavatar.dit.fp8 import quantise_linears_fp8
from avatar_batch.render.liveavatar.dit.rope import apply_rope
from avatar_batch.render.liveavatar.limits import ClipGeometry, check_geometry
from avatar_batch.render.liveavatar.memory import use_expandable_segments
from avatar_batch.render.liveavatar.sampler import SamplingPlan, sample_blocks, seeded_noise, sink_distances
from avatar_batch.render.liveavatar.schedule import dmd_schedule
from avatar_batch.render.liveavatar.streaming import stream_frames
from avatar_batch.render.liveavatar.telemetry import PhaseClock, peak_rss_gib, real_time_factor
from avatar_batch.render.liveavatar.vae import Vae, use_fast_paths
from avatar_batch.render.quality import rel_l2

RESULTS = Path(__file__).resolve().parent / "results"
# A landscape portrait, so each preset's area maps to the spec's worked sizes.
IMAGE_HW = (400, 720)
TEXT_TOKENS = 64
PRIME_LATENTS = 7


@dataclass(frozen=True)
class Case:
    size: str
    steps: int
    precision: str = "bf16"

    @classmethod
    def parse(cls, text: str) -> Case:
        parts = text.split(":")
        return cls(parts[0], int(parts[1]), parts[2] if len(parts) > 2 else "bf16")


def recorded(blocks, keep: list, limit: int):
    """Pass blocks through, keeping a CPU copy of the first `limit` (for fp8 error)."""
    for latents in blocks:
        if len(keep) < limit:
            keep.append(latents.float().cpu())
        yield latents


def random_init_(module: torch.nn.Module, seed: int) -> None:
    """Weights drawn on the device: std 0.02 matrices, unit norm gains, small biases."""
    gen = torch.Generator(device=next(module.parameters()).device).manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if param.dim() == 1 and ("norm" in name or name.endswith("gamma")):
                param.fill_(1.0)
            else:
                param.normal_(0.0, 0.02, generator=gen)


def build_dit(config, device, dtype) -> CausalS2VDiT:
    with torch.device("meta"):
        dit = CausalS2VDiT(config)
    dit = dit.to_empty(device=device).to(dtype).eval()
    random_init_(dit, seed=0)
    return dit


def build_vae(sizes: VaeSizes, device, dtype, fast_paths: bool = True) -> Vae:
    """The full-size VAE with random weights; `fast_paths=False` keeps diffusers' stock modules."""
    from diffusers import AutoencoderKLWan

    model = (
        AutoencoderKLWan(
            base_dim=sizes.dim,
            z_dim=sizes.z_dim,
            dim_mult=list(sizes.dim_mult),
            num_res_blocks=sizes.num_res_blocks,
            attn_scales=list(sizes.attn_scales),
            temperal_downsample=list(sizes.temperal_downsample),
        )
        .to(device=device, dtype=dtype)
        .eval()
    )
    random_init_(model, seed=1)
    if fast_paths:
        use_fast_paths(model, torch.device(device))  # as `load_vae` does
    return Vae(model, sizes, torch.device(device), dtype)


class Encoder:
    """H.264 encoding in a separate ffmpeg process fed from a thread, as the mux
    does; a null sink when ffmpeg is missing on the machine."""

    def __init__(self, width: int, height: int, out: Path):
        self.program = shutil.which("ffmpeg")
        self.process = None
        if self.program:
            argv = [
                self.program,
                "-v",
                "error",
                "-y",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "rgb24",
                "-s",
                f"{width}x{height}",
                "-r",
                "25",
                "-i",
                "-",
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-pix_fmt",
                "yuv420p",
                str(out),
            ]
            self.process = subprocess.Popen(argv, stdin=subprocess.PIPE)

    def write(self, frame) -> None:
        if self.process is not None:
            self.process.stdin.write(frame.tobytes())

    def close(self) -> None:
        if self.process is not None:
            self.process.stdin.close()
            self.process.wait()


def conditioning(dit, vae, geometry: ClipGeometry, device, dtype) -> Conditioning:
    gen = torch.Generator(device="cpu").manual_seed(7)
    states = torch.randn(TEXT_TOKENS, dit.config.text_dim, generator=gen)
    audio = torch.randn(25, dit.config.audio_dim, geometry.num_video_frames, generator=gen)
    pixels = torch.rand(3, geometry.height_px, geometry.width_px, generator=gen).to(device, dtype) * 2 - 1
    return Conditioning(
        dit.embed_text(states.to(device, dtype)),
        audio.to(device, dtype),
        reference_latent(vae, pixels).to(device, dtype),
        motion_latents(vae, pixels).to(device, dtype),
    )


def run_case(
    case: Case, dit, vae, clips: int, device, dtype, latents: list, max_batch: int | None, overlap: bool
) -> dict:
    started = time.perf_counter()
    compiled = dit.rotate is not apply_rope
    on_gpu = device.type == "cuda"
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    height, width = size_for(case.size, *IMAGE_HW)
    geometry = ClipGeometry(height, width, 48, clips)
    check_geometry(geometry, case.steps)
    cond = conditioning(dit, vae, geometry, device, dtype)
    plan = SamplingPlan(geometry, dmd_schedule(case.steps), seed=420)
    # Synchronising phase boundaries would serialise the side-stream decode: with
    # overlap only the sum of the phases is exact.
    clock = PhaseClock(synchronize=torch.cuda.synchronize if on_gpu and not overlap else None)
    encoder = Encoder(width, height, Path("/tmp") / f"bench-{width}x{height}.mp4")
    clip_done_s = []
    sampled = sample_blocks(dit, cond, plan, sink_distances(420), seeded_noise(plan), max_batch=max_batch)
    blocks = recorded(sampled, latents, 4)
    frames = stream_frames(
        blocks, vae.stream_decoder(), cond.motion_latents[:, -PRIME_LATENTS:], clock, overlap=overlap
    )
    for index, frame in enumerate(frames):
        encoder.write(frame)
        if (index + 1) % 48 == 0:
            clip_done_s.append(time.perf_counter())
    encoder.close()
    steady_s = clip_done_s[-1] - clip_done_s[0]
    fps = 48 * (clips - 1) / steady_s
    return {
        "size": case.size,
        "width": width,
        "height": height,
        "steps": case.steps,
        "precision": case.precision,
        "compiled": compiled,
        "clips": clips,
        "max_batch": max_batch or case.steps,
        "overlap_decode": overlap,
        "fps": round(fps, 2),
        "real_time_factor": real_time_factor(fps),
        "first_clip_s": round(clip_done_s[0] - started, 2),
        "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if on_gpu else 0.0,
        "peak_rss_gib": round(peak_rss_gib(), 2),
        "phases": {k: round(v, 2) for k, v in clock.seconds.items()},
        "encoder": "libx264 veryfast (ffmpeg)" if encoder.program else "none on this machine",
    }


def _without_out(argv: list[str]) -> list[str]:
    """The command line minus `--out PATH` (where a run wrote is not part of how to repeat it)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--out":
            skip = True
        elif not arg.startswith("--out="):
            kept.append(arg)
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", nargs="+", default=["704*384:4", "688*368:4", "384*256:3"])
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--config", default="14b", choices=["14b", "tiny"])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="eager DiT blocks")
    parser.add_argument("--device", default="cuda", help="cuda, or cpu to check the harness with --config tiny")
    parser.add_argument(
        "--no-overlap",
        dest="overlap",
        action="store_false",
        help="decode on the sampler's stream (default: a second stream when memory allows)",
    )
    parser.add_argument(
        "--max-batch",
        type=int,
        default=None,
        help="denoising calls per batch (default: the step count; 1 = one call at a time)",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        use_expandable_segments()  # as the runner does, before the first CUDA allocation
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    config = CONFIG_14B if args.config == "14b" else CONFIG_TINY
    began = time.perf_counter()
    dit = build_dit(config.dit, device, dtype)
    vae = build_vae(config.vae, device, dtype)
    build_s = time.perf_counter() - began
    if args.compile:
        compile_blocks(dit)
    cases = [Case.parse(text) for text in args.cases]
    runs, bf16_latents, quantised = [], {}, False
    # bf16 cases first: fp8 quantises the resident DiT in place.
    for case in sorted(cases, key=lambda c: c.precision != "bf16"):
        if case.precision == "fp8" and not quantised:
            quantise_linears_fp8(dit)
            quantised = True
        latents: list = []
        try:
            run = run_case(case, dit, vae, args.clips, device, dtype, latents, args.max_batch, args.overlap)
        except torch.OutOfMemoryError as error:  # recorded, and the other cases still run
            run = {"size": case.size, "steps": case.steps, "precision": case.precision, "error": str(error)[:200]}
            torch.cuda.empty_cache()
            runs.append(run)
            print(json.dumps(run), flush=True)
            continue
        key = (case.size, case.steps)
        if case.precision == "bf16":
            bf16_latents.setdefault(key, latents)
        elif key in bf16_latents:
            ref = torch.cat([t.flatten() for t in bf16_latents[key]])
            got = torch.cat([t.flatten() for t in latents])
            run["latent_rel_error_vs_bf16"] = round(rel_l2(got, ref), 4)
        runs.append(run)
        print(json.dumps(run), flush=True)
    device_name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    name = device_name.replace(" ", "-")
    result = {
        "device": device_name,
        "torch": torch.__version__,
        "config": args.config,
        "build_s": round(build_s, 1),
        "compile": compile_stats() if args.compile else None,
        "command": "python -m benchmarks.render_speed " + " ".join(_without_out(sys.argv[1:])),
        "runs": runs,
    }
    out = args.out or RESULTS / f"{name}-{datetime.now(UTC):%Y%m%d}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'size':>8} {'steps':>5} {'prec':>5} {'fps':>7} {'rt':>6} {'first':>7} {'gpu GiB':>8}")
    for r in runs:
        if "error" in r:
            print(f"{r['size']:>8} {r['steps']:>5} {r['precision']:>5} out of memory")
            continue
        print(
            f"{r['size']:>8} {r['steps']:>5} {r['precision']:>5} {r['fps']:>7} {r['real_time_factor']:>6} "
            f"{r['first_clip_s']:>7} {r['peak_gpu_gib']:>8}"
        )


if __name__ == "__main__":
    main()
