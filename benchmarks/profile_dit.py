"""Where a 14B denoising wave spends its time: wall clock against GPU busy time.

    PYTHONPATH=src python -m benchmarks.profile_dit --size 384*256 --steps 3 --waves 6

Builds the 14B DiT with random weights on the GPU (compiled blocks, as the
runner does), one step cache per step with full rings, then times waves of
`--steps` denoising calls, run one call at a time and as one batch, and prints
the top CUDA kernels of a batched wave. The gap between the wall clock and the
kernels' summed time is host overhead and launch gaps. A measuring tool for
optimisation work; the render benchmark is benchmarks/render_speed.py.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from avatar_batch.render.geometry import size_for
from avatar_batch.render.liveavatar.config import CONFIG_14B, CONFIG_TINY
from avatar_batch.render.liveavatar.dit import BlockInputs
from avatar_batch.render.liveavatar.dit.compiled import compile_blocks
from benchmarks.render_speed import IMAGE_HW, build_dit

WINDOW_BLOCKS = 4  # a 12-latent-frame ring holds 4 blocks


def make_wave(inputs: BlockInputs, first_block: int, steps: int) -> list[BlockInputs]:
    """One anti-diagonal: block first_block - k at step k."""
    return [
        BlockInputs(inputs.latents, 1000.0 - 250.0 * k, inputs.audio, 3 * (first_block - k), 10) for k in range(steps)
    ]


def run_wave(dit, wave, caches, cond, batched: bool) -> None:
    if batched:
        dit.denoise_blocks(wave, caches, cond)
    else:
        for block, cache in zip(wave, caches):
            dit.denoise_block(block, cache, cond)


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def time_waves(dit, inputs, caches, cond, steps: int, waves: int, first: int, batched: bool) -> list[float]:
    times = []
    for i in range(waves):
        wave = make_wave(inputs, first + i, steps)
        synchronize()
        began = time.perf_counter()
        run_wave(dit, wave, caches, cond, batched)
        synchronize()
        times.append(time.perf_counter() - began)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="704*384")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--waves", type=int, default=6)
    parser.add_argument("--device", default="cuda", help="cpu (tiny config, eager) checks the script itself")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        dit = compile_blocks(build_dit(CONFIG_14B.dit, device, torch.bfloat16))
    else:
        dit = build_dit(CONFIG_TINY.dit, device, torch.float32)
    dtype = dit.dtype
    height, width = size_for(args.size, *IMAGE_HW)
    h, w = height // 8, width // 8
    gen = torch.Generator(device=device).manual_seed(0)
    context = dit.embed_text(torch.randn(64, dit.config.text_dim, device=device, dtype=dtype, generator=gen))
    cond = dit.new_cond_cache(height, width)
    dit.prefill_sink(
        torch.randn(16, 1, h, w, device=device, dtype=dtype, generator=gen),
        torch.randn(16, 19, h, w, device=device, dtype=dtype, generator=gen),
        context,
        cond,
    )
    caches = dit.new_step_caches(height, width, args.steps)
    inputs = BlockInputs(
        torch.randn(16, 3, h, w, device=device, dtype=dtype, generator=gen),
        0.0,
        torch.randn(25, dit.config.audio_dim, 12, device=device, dtype=dtype, generator=gen),
        0,
        10,
    )
    # Fill the rings: step cache k holds blocks 0 .. first - k - 1 (at least a full ring).
    first = WINDOW_BLOCKS + args.steps
    for k, cache in enumerate(caches):
        for block in range(first - k):
            dit.denoise_block(BlockInputs(inputs.latents, 500.0, inputs.audio, 3 * block, 10), cache, cond)
    results = {}
    for name, batched in (("one_call_at_a_time", False), ("batched", True)):
        time_waves(dit, inputs, caches, cond, args.steps, 2, first, batched)  # warm-up and compile
        first += 2
        timed = time_waves(dit, inputs, caches, cond, args.steps, args.waves, first, batched)
        first += args.waves
        activity = (
            torch.profiler.ProfilerActivity.CUDA if device.type == "cuda" else torch.profiler.ProfilerActivity.CPU
        )
        with torch.profiler.profile(activities=[activity]) as prof:
            time_waves(dit, inputs, caches, cond, args.steps, 1, first, batched)
        first += 1
        gpu_s = sum(e.self_device_time_total for e in prof.key_averages()) / 1e6
        results[name] = {"median_wave_s": round(sorted(timed)[len(timed) // 2], 4), "gpu_busy_s": round(gpu_s, 4)}
        print(name, json.dumps(results[name]), flush=True)
        if batched:
            print(prof.key_averages().table(sort_by="self_device_time_total", row_limit=14, max_name_column_width=60))
    print(json.dumps({"size": args.size, "height": height, "width": width, "steps": args.steps, "results": results}))


if __name__ == "__main__":
    main()
