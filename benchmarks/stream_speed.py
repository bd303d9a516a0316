"""Block-streamed placements of the 14B DiT on one GPU, against the resident model and library offloaders.

    PYTHONPATH=src python -m benchmarks.stream_speed --part compare
    PYTHONPATH=src python -m benchmarks.stream_speed --part budgets --cases 704*384:4:bf16:141 704*384:4:bf16:48

Random weights of the real architecture are built on the GPU block by block
(a streamed block is drawn on the GPU, then packed into pinned host memory),
so a budget emulated with `torch.cuda.set_per_process_memory_fraction` holds
from the first allocation.

* `compare`: steady-state time of one wavefront DiT call (B calls, full cache
  windows) with every block streamed: our ring (2 and 3 slots) against
  diffusers' `apply_group_offloading(block_level, use_stream, record_stream)`
  (with and without `low_cpu_mem_usage`) and accelerate's `cpu_offload`;
  the resident model as the reference. Also the error of 8-bit weight storage
  (ours, per-channel scales) and of diffusers' `apply_layerwise_casting` (fp8
  storage, no scales) on one call's velocities, and fp8 KV caches.
* `budgets`: steady-state FPS of the real sampler + streaming VAE decode per
  case `size:steps:weights:budget_gib[:kv_format]` (weights bf16 | int8 | fp8
  (fp8 compute)), the placement chosen by `fit_placement` (this benchmark's
  own search: the least host->GPU bytes per wave that fits), bytes copied
  host->GPU per generated frame, peak GPU memory.

Results: benchmarks/results/<gpu>-<yyyymmdd>-stream-<part>.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch import nn

from avatar_batch.render.geometry import size_for
from avatar_batch.render.liveavatar.config import CONFIG_14B, CONFIG_TINY, DiTConfig
from avatar_batch.render.liveavatar.dit import BlockInputs, CausalS2VDiT, TokenGrid
from avatar_batch.render.liveavatar.dit.compiled import compile_blocks, compile_stats
from avatar_batch.render.liveavatar.dit.placed import DiTPlacer
from avatar_batch.render.liveavatar.dit.quant import quantise_linears
from avatar_batch.render.liveavatar.dit.rings import CopyEngine
from avatar_batch.render.liveavatar.dit.weight_stream import SlotLayout
from avatar_batch.render.liveavatar.limits import ClipGeometry, check_geometry
from avatar_batch.render.liveavatar.memory import use_expandable_segments
from avatar_batch.render.liveavatar.placement import Placement
from avatar_batch.render.liveavatar.placing import dit_placer
from avatar_batch.render.liveavatar.sampler import SamplingPlan, sample_blocks, seeded_noise, sink_distances
from avatar_batch.render.liveavatar.schedule import dmd_schedule
from avatar_batch.render.liveavatar.streaming import stream_frames
from avatar_batch.render.liveavatar.telemetry import PhaseClock, peak_rss_gib
from benchmarks.render_speed import IMAGE_HW, PRIME_LATENTS, build_vae, conditioning, random_init_

RESULTS = Path(__file__).resolve().parent / "results"
GIB = 2**30
# Working memory beside weights and caches (activations, VAE and its decode), from the
# resident H100 runs: peak minus weights minus caches was 4.5 GiB at 704*384 and
# 2.3 GiB at 384*256; one GiB of margin on top.
WORKING_GIB_PER_TOKEN_OF_WAVE = 4.5 / (4 * 3 * 1056)
WORKING_MARGIN_GIB = 1.5


PARTIAL: list[Path] = []  # where each finished row is appended too, so a killed run keeps its rows


def emit(row: dict) -> None:
    line = json.dumps(row)
    print(line, flush=True)
    for path in PARTIAL:
        with path.open("a") as handle:
            handle.write(line + "\n")


# --- building a placed random model -------------------------------------------------


def build_placed_dit(config: DiTConfig, device: torch.device, dtype: torch.dtype, placer: DiTPlacer) -> CausalS2VDiT:
    """Random weights, resident parts straight on the device, streamed blocks via pinned host memory."""
    with torch.device("meta"):
        dit = CausalS2VDiT(config)
    for seed, (name, child) in enumerate(dit.named_children()):
        if name != "blocks":
            child.to_empty(device=device).to(dtype)
            random_init_(child, seed=1000 + seed)
    dit.eval().requires_grad_(False)
    placer.finish_trunk(dit)
    for index, block in enumerate(dit.blocks):
        random_init_(block.to_empty(device=device).to(dtype), seed=index)
        placer.finish_block(index, block)
    return placer.attach(dit)


def resident_placer(config: DiTConfig, engine: CopyEngine, weight_format: str = "bf16") -> DiTPlacer:
    return DiTPlacer(config.num_layers, config.num_layers, 2, weight_format, "bf16", engine)


# --- the placement this benchmark fits to a budget ------------------------------------


@dataclass(frozen=True)
class Sizes:
    """Bytes of what a placement puts somewhere, for one video size and step count."""

    block: int
    other_weights: int
    kv_step: int  # one step cache, all layers
    cond: int  # sink keys/values, all layers
    text: int
    working: int

    @classmethod
    def of(cls, config: DiTConfig, geometry: ClipGeometry, steps: int, weight_format: str, kv_format: str) -> Sizes:
        with torch.device("meta"):
            dit = CausalS2VDiT(config).to(torch.bfloat16)
        compute = "fp8" if weight_format == "fp8" else "bf16"
        quantise_linears(dit, weight_format, compute)
        block = SlotLayout.of(dit.blocks[0]).nbytes
        total = sum(t.numel() * t.element_size() for t in [*dit.parameters(), *dit.buffers()])
        grid = TokenGrid.from_pixels(geometry.height_px, geometry.width_px)
        per_token = 2 * config.dim * config.num_layers  # keys and values, every layer
        window = geometry.latent_frames_per_clip * grid.tokens_per_frame
        kv_bytes = 1 + 4 / config.head_dim if kv_format == "fp8" else 2
        wave_tokens = steps * 3 * grid.tokens_per_frame
        working = int((WORKING_GIB_PER_TOKEN_OF_WAVE * wave_tokens + WORKING_MARGIN_GIB) * GIB)
        return cls(
            block=block,
            other_weights=total - config.num_layers * block,
            kv_step=int(window * per_token * kv_bytes),
            cond=grid.sink_tokens * per_token * 2,
            text=config.text_len * per_token * 2,
            working=working,
        )


class NoFit(Exception):
    """No placement of this benchmark's search fits the budget."""


def fit_placement(
    sizes: Sizes, layers: int, steps: int, budget_bytes: int, weight_format: str, kv_format: str, slots: int = 2
) -> Placement:
    """Fewest host->GPU bytes per wave that fit: every (resident blocks, resident KV steps, cond) tried."""
    best: tuple[float, Placement] | None = None
    for cond_stream in (False, True):
        for kv_resident in range(steps, -1, -1):
            for resident in range(layers, -1, -1):
                streamed_steps = steps - kv_resident
                kv_layer = streamed_steps * sizes.kv_step // layers + (sizes.cond // layers if cond_stream else 0)
                gpu = (
                    sizes.other_weights
                    + resident * sizes.block
                    + (slots * sizes.block if resident < layers else 0)
                    + kv_resident * sizes.kv_step
                    + (0 if cond_stream else sizes.cond)
                    + (slots * kv_layer if kv_layer else 0)
                    + sizes.text
                    + sizes.working
                )
                if gpu > budget_bytes:
                    continue
                # Per wave: each streamed block once, 3/4 of each streamed step cache (a full ring
                # minus the block written), the sink once per call.
                traffic = (layers - resident) * sizes.block + streamed_steps * sizes.kv_step * 0.75
                traffic += steps * sizes.cond if cond_stream else 0
                placement = Placement(
                    offload="none" if resident == layers and not kv_layer else "blocks",
                    compute="fp8" if weight_format == "fp8" else "bf16",
                    weight_format=weight_format,  # type: ignore[arg-type]
                    dit_layers_resident=resident,
                    dit_layers_total=layers,
                    kv_format=kv_format,  # type: ignore[arg-type]
                    kv_steps_resident=kv_resident,
                    kv_steps_total=steps,
                    cond_cache="stream" if cond_stream else "gpu",
                    helpers="gpu",
                    prefetch_layers=slots,
                    gpu_peak_bytes=gpu,
                    host_pinned_bytes=(layers - resident) * sizes.block + streamed_steps * sizes.kv_step,
                    gpu_budget_bytes=budget_bytes,
                    host_budget_bytes=0,
                )
                if best is None or traffic < best[0]:
                    best = (traffic, placement)
                break  # more resident blocks did not fit; fewer only move more
    if best is None:
        raise NoFit(f"nothing fits {budget_bytes / GIB:.1f} GiB")
    return best[1]


# --- budgets: the real sampler and decoder ----------------------------------------------


@dataclass(frozen=True)
class Case:
    size: str
    steps: int
    weights: str  # bf16 | int8 | fp8 (fp8 = scaled_mm compute)
    budget_gib: float | None  # None: the whole GPU
    kv_format: str = "bf16"
    slots: int = 2  # ring slots (prefetch_layers)

    @classmethod
    def parse(cls, text: str) -> Case:
        """size:steps:weights:budget_gib[:kv_format[:slots]]; budget 141 or "all" = the whole GPU."""
        size, steps, weights, budget, *rest = text.split(":")
        kv = rest[0] if rest else "bf16"
        slots = int(rest[1]) if len(rest) > 1 else 2
        return cls(size, int(steps), weights, None if budget in ("141", "all") else float(budget), kv, slots)


def on_gpu(device: torch.device) -> bool:
    return device.type == "cuda"


def sync(device: torch.device) -> None:
    if on_gpu(device):
        torch.cuda.synchronize(device)


def peak_gib(device: torch.device) -> float:
    return round(torch.cuda.max_memory_allocated(device) / GIB, 2) if on_gpu(device) else 0.0


def reset_peak(device: torch.device) -> None:
    if on_gpu(device):
        torch.cuda.reset_peak_memory_stats(device)


def set_budget(device: torch.device, budget_gib: float | None) -> int:
    if not on_gpu(device):  # the CPU harness check: nothing to emulate
        return 64 * GIB
    device = torch.device("cuda", torch.cuda.current_device() if device.index is None else device.index)
    total = torch.cuda.get_device_properties(device).total_memory
    if budget_gib is None:
        torch.cuda.set_per_process_memory_fraction(1.0, device)
        return total
    torch.cuda.set_per_process_memory_fraction(min(1.0, budget_gib * GIB / total), device)
    return int(budget_gib * GIB)


def run_budget_case(
    case: Case, config: DiTConfig, vae, device: torch.device, clips: int, latents: list[torch.Tensor]
) -> dict:
    """One case; the first 4 blocks' latents are appended to `latents` (for errors between cases)."""
    dtype = dtype_on(device)
    height, width = size_for(case.size, *IMAGE_HW)
    geometry = ClipGeometry(height, width, 48, clips)
    check_geometry(geometry, case.steps)
    budget = set_budget(device, case.budget_gib)
    sizes = Sizes.of(config, geometry, case.steps, case.weights, case.kv_format)
    placement = fit_placement(sizes, config.num_layers, case.steps, budget, case.weights, case.kv_format, case.slots)
    reset_peak(device)
    started = time.perf_counter()
    engine = CopyEngine(device)
    dit = build_placed_dit(config, device, dtype, dit_placer(placement, engine))
    if on_gpu(device):
        compile_blocks(dit)
    load_s = time.perf_counter() - started
    cond = conditioning(dit, vae, geometry, device, dtype)
    plan = SamplingPlan(geometry, dmd_schedule(case.steps), seed=420)
    blocks = _kept(sample_blocks(dit, cond, plan, sink_distances(420), seeded_noise(plan)), latents, 4)
    clock = PhaseClock()
    frames = stream_frames(blocks, vae.stream_decoder(), cond.motion_latents[:, -PRIME_LATENTS:], clock, overlap=True)
    marks = []  # (time, bytes in) at each clip's last frame
    for index, _ in enumerate(frames):
        if (index + 1) % 48 == 0:
            marks.append((time.perf_counter(), engine.counters.host_to_device))
    steady_frames = 48 * (clips - 1)
    result = {
        "size": case.size,
        "width": width,
        "height": height,
        "steps": case.steps,
        "precision": "fp8" if case.weights == "fp8" else "bf16",
        "weight_format": case.weights,
        "kv_format": case.kv_format,
        "budget_gib": case.budget_gib,
        "offload": placement.offload,
        "placement": placement.to_dict(),
        "fps": round(steady_frames / (marks[-1][0] - marks[0][0]), 2),
        "first_video_s": round(marks[0][0] - started, 1),
        "load_s": round(load_s, 1),
        "peak_gpu_gib": peak_gib(device),
        "estimated_gpu_gib": round(placement.gpu_peak_bytes / GIB, 2),
        "peak_rss_gib": round(peak_rss_gib(), 2),
        "h2d_gib_per_frame": round((marks[-1][1] - marks[0][1]) / steady_frames / GIB, 3),
        "host_pinned_gib": round(placement.host_pinned_bytes / GIB, 2),
    }
    del dit, cond, blocks, frames
    release()
    return result


def _kept(blocks, keep: list, limit: int):
    for block in blocks:
        if len(keep) < limit:
            keep.append(block.float().cpu())
        yield block


def dtype_on(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if on_gpu(device) else torch.float32


def release() -> None:
    """Hand back cached device blocks and cached pinned host blocks (cases differ in sizes)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        for name in ("_accelerator_emptyHostCache", "_host_emptyCache", "_cuda_hostEmptyCache"):
            if hasattr(torch._C, name):  # its name moved between torch versions
                getattr(torch._C, name)()
                break


# --- compare: one steady-state wave, many offloaders ---------------------------------------


class WaveBench:
    """One wavefront call with full cache windows: B blocks at latent frame 12, one step cache each."""

    def __init__(self, dit: CausalS2VDiT, size: str, steps: int, device: torch.device):
        height, width = size_for(size, *IMAGE_HW)
        self.dit, self.steps, self.device = dit, steps, device
        dtype = dtype_on(device)
        gen = torch.Generator(device="cpu").manual_seed(3)
        lat = (16, 3, height // 8, width // 8)
        self.cond_cache = dit.new_cond_cache(height, width)
        context = dit.embed_text(torch.randn(64, dit.config.text_dim, generator=gen).to(device, dtype))
        ref = torch.randn(16, 1, *lat[2:], generator=gen).to(device, dtype)
        motion = torch.randn(16, 19, *lat[2:], generator=gen).to(device, dtype)
        dit.prefill_sink(ref, motion, context, self.cond_cache)
        self.caches = dit.new_step_caches(height, width, steps, 12)
        for cache in self.caches:  # pretend the ring is full: every call reads the whole window
            cache.written_tokens = cache.capacity_tokens
            for tensor in [*cache.keys, *cache.values]:
                tensor.normal_()
        timesteps = dmd_schedule(steps).timesteps
        self.inputs = [
            BlockInputs(
                torch.randn(lat, generator=gen).to(device, dtype),
                timesteps[k],
                torch.randn(25, dit.config.audio_dim, 12, generator=gen).to(device, dtype),
                12,
                10,
            )
            for k in range(steps)
        ]

    def call(self, forward=None) -> torch.Tensor:
        for cache in self.caches:
            cache.written_tokens = cache.capacity_tokens
        run = forward or self.dit.denoise_blocks
        return run(self.inputs, self.caches, self.cond_cache)

    def time_ms(self, forward=None, repeats: int = 5) -> float:
        for _ in range(2):
            self.call(forward)
        sync(self.device)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            self.call(forward)
            sync(self.device)
            times.append(time.perf_counter() - start)
        return round(sorted(times)[len(times) // 2] * 1000, 1)


class BlocksOnly(nn.Module):
    """The DiT's blocks as the only child, and a forward that runs one DiT call, so that
    diffusers' block-level hooks (which learn the order from the parent's forward) see them."""

    def __init__(self, dit: CausalS2VDiT):
        super().__init__()
        self.blocks = dit.blocks
        self._dit = [dit]  # not a child: its other weights stay resident

    def forward(self, inputs, caches, cond_cache):
        return self._dit[0].denoise_blocks(inputs, caches, cond_cache)


def compare(config: DiTConfig, device: torch.device, size: str, steps: int) -> list[dict]:
    """Wave time with every block streamed: ours against diffusers' group offloading, same model."""
    rows: list[dict] = []
    dtype = dtype_on(device)

    def record(name: str, bench: WaveBench, forward=None, engine: CopyEngine | None = None) -> None:
        reset_peak(device)
        before = engine.counters.host_to_device if engine else 0
        ms = bench.time_ms(forward)
        moved = (engine.counters.host_to_device - before) / 7 if engine else None  # 2 warm-up + 5 timed calls
        row = {
            "variant": name,
            "size": size,
            "steps": steps,
            "wave_ms": ms,
            "peak_gpu_gib": peak_gib(device),
            "h2d_gib_per_wave": None if moved is None else round(moved / GIB, 2),
        }
        rows.append(row)
        emit(row)

    def fresh(resident: int, slots: int = 2) -> tuple[CausalS2VDiT, CopyEngine]:
        engine = CopyEngine(device)
        placer = DiTPlacer(config.num_layers, resident, slots, "bf16", "bf16", engine)
        dit = build_placed_dit(config, device, dtype, placer)
        return (compile_blocks(dit) if on_gpu(device) else dit), engine

    dit, _ = fresh(config.num_layers)
    record("resident bf16 (no offload)", WaveBench(dit, size, steps, device))
    del dit
    release()
    if on_gpu(device):
        from diffusers.hooks import apply_group_offloading

        for low_cpu in (False, True):
            dit, _ = fresh(config.num_layers)
            bench = WaveBench(dit, size, steps, device)  # the sink prefill needs the blocks once
            holder = BlocksOnly(dit)
            apply_group_offloading(
                holder,
                onload_device=device,
                offload_device=torch.device("cpu"),
                offload_type="block_level",
                num_blocks_per_group=1,
                use_stream=True,
                record_stream=True,
                low_cpu_mem_usage=low_cpu,
            )
            release()
            name = f"diffusers apply_group_offloading block_level use_stream record_stream low_cpu_mem_usage={low_cpu}"
            record(name, bench, holder)
            del dit, bench, holder
            release()
    for slots in (2, 3):
        dit, engine = fresh(0, slots)
        record(f"ours: ring of {slots} slots, every block streamed", WaveBench(dit, size, steps, device), engine=engine)
        del dit
        release()
    return rows


def formats_error(config: DiTConfig, device: torch.device, size: str, steps: int) -> list[dict]:
    """Relative L2 of one wave's velocities against the bf16 model with the same weights:
    8-bit weight storage (ours, per-channel scales) and diffusers' layerwise fp8 casting."""
    rows = []
    dtype = dtype_on(device)

    def velocities(weight_format: str = "bf16", casting: bool = False) -> torch.Tensor:
        engine = CopyEngine(device)
        placer = DiTPlacer(config.num_layers, config.num_layers, 2, weight_format, "bf16", engine)
        dit = build_placed_dit(config, device, dtype, placer)
        if casting:
            from diffusers.hooks import apply_layerwise_casting

            apply_layerwise_casting(dit.blocks, storage_dtype=torch.float8_e4m3fn, compute_dtype=dtype)
        out = WaveBench(dit, size, steps, device).call().float()
        del dit
        release()
        return out

    reference = velocities()
    variants = [("ours int8 weights, per-channel scales", "int8", False)]
    variants += [("ours fp8 weights, per-channel scales", "fp8", False)]
    if on_gpu(device):
        variants += [("diffusers apply_layerwise_casting fp8 storage", "bf16", True)]
    for name, weight_format, casting in variants:
        got = velocities(weight_format, casting)
        error = float((got - reference).norm() / reference.norm())
        rows.append({"variant": name, "size": size, "velocity_rel_l2": round(error, 4)})
        emit(rows[-1])
    return rows


# --- main ----------------------------------------------------------------------------------


def _command() -> str:
    kept, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg == "--out":
            skip = True
        else:
            kept.append(arg)
    return "python -m benchmarks.stream_speed " + " ".join(kept)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--part", choices=["compare", "budgets"], required=True)
    parser.add_argument("--cases", nargs="+", default=["704*384:4:bf16:141", "704*384:4:bf16:48"])
    parser.add_argument("--compare-sizes", nargs="+", default=["704*384:4"])
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--config", default="14b", choices=["14b", "tiny"])
    parser.add_argument("--device", default="cuda", help="cuda, or cpu to check the harness with --config tiny")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    if on_gpu(device):
        use_expandable_segments()
    model = CONFIG_14B if args.config == "14b" else CONFIG_TINY
    device_name = torch.cuda.get_device_name(device) if on_gpu(device) else "cpu"
    stamp = f"{datetime.now(UTC):%Y%m%d}"
    out = args.out or RESULTS / f"{device_name.replace(' ', '-')}-{stamp}-stream-{args.part}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    PARTIAL.append(out.with_suffix(".partial.jsonl"))
    runs: list[dict] = []
    if args.part == "compare":
        for text in args.compare_sizes:
            size, steps = text.split(":")
            runs += compare(model.dit, device, size, int(steps))
            runs += formats_error(model.dit, device, size, int(steps))
    else:
        runs = budgets([Case.parse(text) for text in args.cases], model, device, args.clips)
    result = {
        "device": device_name,
        "torch": torch.__version__,
        "command": _command(),
        "compile": compile_stats(),
        "runs": runs,
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    PARTIAL[0].unlink(missing_ok=True)
    keys = ("variant", "size", "steps", "weight_format", "kv_format", "budget_gib", "offload", "fps", "wave_ms")
    keys += (
        "h2d_gib_per_frame",
        "h2d_gib_per_wave",
        "peak_gpu_gib",
        "velocity_rel_l2",
        "latent_rel_l2_vs_first",
        "error",
    )
    for r in runs:
        print({k: r[k] for k in keys if r.get(k) is not None})


def budgets(cases: list[Case], model, device: torch.device, clips: int) -> list[dict]:
    """Every case in order; each case's latents are compared with the first case of its size."""
    vae = build_vae(model.vae, device, dtype_on(device))
    runs, first_latents = [], {}
    for case in cases:
        latents: list[torch.Tensor] = []
        try:
            run = run_budget_case(case, model.dit, vae, device, clips, latents)
        except (torch.OutOfMemoryError, NoFit) as error:  # recorded; the other cases still run
            run = {**case.__dict__, "error": str(error).splitlines()[0][:300]}
            release()
        else:
            key = (case.size, case.steps)
            if key in first_latents:
                ref, got = (torch.cat([t.flatten() for t in x]) for x in (first_latents[key], latents))
                run["latent_rel_l2_vs_first"] = round(float((got - ref).norm() / ref.norm()), 4)
            else:
                first_latents[key] = latents
        runs.append(run)
        emit(run)
    return runs


if __name__ == "__main__":
    main()
