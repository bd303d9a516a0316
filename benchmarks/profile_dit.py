"""Where a 14B denoising call spends its time, and what compiling buys.

    PYTHONPATH=src python -m benchmarks.profile_dit --size 704*384 --calls 6

Builds the 14B DiT with random weights on the GPU, one step cache, fills the
ring with a few blocks, then times denoising calls for each variant (eager,
compiled RoPE, compiled blocks, cuDNN attention) and prints the top CUDA
kernels of the eager and best variants. A measuring tool for optimisation work;
the render benchmark is benchmarks/render_speed.py.
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import nullcontext

import torch

from benchmarks.render_speed import IMAGE_HW, build_dit
from avatar_batch.render.geometry import size_for
from avatar_batch.render.liveavatar.config import CONFIG_14B
from avatar_batch.render.liveavatar.dit import BlockInputs
from avatar_batch.render.liveavatar.dit import model as dit_model


def variant_context(name: str):
    if "cudnn" in name:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel([SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION])
    return nullcontext()


def apply_variant(dit, name: str) -> None:
    import avatar_batch.render.liveavatar.dit.rope as rope_module

    if "rope" in name or "blocks" in name:
        dit_model.apply_rope = torch.compile(rope_module.apply_rope, dynamic=False)
    if "blocks" in name:
        torch._dynamo.config.cache_size_limit = 128
        for original in ("_denoise_attend", "_prefill_attend"):
            maker = getattr(type(dit), original)
            setattr(dit, original, lambda *a, _m=maker, **k: torch.compiler.disable(_m(dit, *a, **k)))
        for block in dit.blocks:
            block.forward = torch.compile(block.forward, dynamic=False)


def time_calls(dit, inputs, context, cache, cond, calls: int, start_block: int) -> list[float]:
    times = []
    for i in range(calls):
        block = BlockInputs(inputs.latents, inputs.timestep, inputs.audio, 3 * (start_block + i), 10)
        torch.cuda.synchronize()
        began = time.perf_counter()
        dit.denoise_block(block, cache, cond)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - began)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="704*384")
    parser.add_argument("--calls", type=int, default=6)
    parser.add_argument("--variants", nargs="+", default=["eager", "cudnn", "rope", "blocks", "blocks+cudnn"])
    args = parser.parse_args()
    device, dtype = torch.device("cuda"), torch.bfloat16
    dit = build_dit(CONFIG_14B.dit, device, dtype)
    height, width = size_for(args.size, *IMAGE_HW)
    h, w = height // 8, width // 8
    gen = torch.Generator(device="cuda").manual_seed(0)
    context = dit.embed_text(torch.randn(64, 4096, device=device, dtype=dtype, generator=gen))
    cond = dit.new_cond_cache(height, width)
    dit.prefill_sink(torch.randn(16, 1, h, w, device=device, dtype=dtype, generator=gen),
                     torch.randn(16, 19, h, w, device=device, dtype=dtype, generator=gen), context, cond)
    cache = dit.new_step_caches(height, width, 1)[0]
    inputs = BlockInputs(torch.randn(16, 3, h, w, device=device, dtype=dtype, generator=gen), 857.7,
                         torch.randn(25, 1024, 12, device=device, dtype=dtype, generator=gen), 0, 10)
    results = {}
    next_block = 0
    for name in args.variants:
        apply_variant(dit, name)
        with variant_context(name):
            warm = time_calls(dit, inputs, context, cache, cond, 4, next_block)
            next_block += 4
            timed = time_calls(dit, inputs, context, cache, cond, args.calls, next_block)
            next_block += args.calls
            if name in (args.variants[0], args.variants[-1]):
                with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
                    time_calls(dit, inputs, context, cache, cond, 1, next_block)
                next_block += 1
                print(f"--- {name}: top CUDA kernels of one call")
                print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=18, max_name_column_width=70))
        results[name] = {"warmup_s": [round(t, 3) for t in warm], "median_call_s": round(sorted(timed)[len(timed) // 2], 4)}
        print(name, json.dumps(results[name]), flush=True)
    print(json.dumps({"size": args.size, "height": height, "width": width, "results": results}))


if __name__ == "__main__":
    main()
