"""Streaming VAE decode speed at full size, per variant.

    PYTHONPATH=src python -m benchmarks.profile_vae --sizes 704*384 384*256

Decodes 4 blocks of 3 latents (48 frames) with the full-size Wan2.1 decoder
(random weights, bf16) after priming, for each variant: as shipped, and with
channels-last-3d convolution weights. On an H100 channels-last decoded 48 frames at
704x384 in 0.707 s against 0.765 s, but full render_speed runs with it were no
faster than without beyond the ~5 % spread between machines, so it is not adopted.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from avatar_batch.render.geometry import size_for
from avatar_batch.render.liveavatar.config import VaeSizes
from benchmarks.render_speed import IMAGE_HW, build_vae


def decode_48(vae, h: int, w: int) -> float:
    gen = torch.Generator(device="cuda").manual_seed(0)
    decoder = vae.stream_decoder()
    decoder.prime(torch.randn(1, 16, 7, h, w, device="cuda", generator=gen))
    blocks = [torch.randn(1, 16, 3, h, w, device="cuda", generator=gen) for _ in range(4)]
    torch.cuda.synchronize()
    began = time.perf_counter()
    for block in blocks:
        decoder.decode_chunk(block)
    torch.cuda.synchronize()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", nargs="+", default=["704*384", "384*256"])
    args = parser.parse_args()
    vae = build_vae(VaeSizes(), torch.device("cuda"), torch.bfloat16)
    results = {}
    for name in ("shipped", "channels_last"):
        if name == "channels_last":
            for module in vae.model.modules():
                if isinstance(module, torch.nn.Conv3d):
                    module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last_3d)
        for size in args.sizes:
            height, width = size_for(size, *IMAGE_HW)
            h, w = height // 8, width // 8
            decode_48(vae, h, w)
            runs = [decode_48(vae, h, w) for _ in range(3)]
            key = f"{name} {size}"
            results[key] = {"decode_48_frames_s": round(sorted(runs)[1], 3), "fps": round(48 / sorted(runs)[1], 1)}
            print(key, json.dumps(results[key]), flush=True)
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
