"""Streaming VAE decode speed at full size, per variant, with each variant's difference.

    PYTHONPATH=src python -m benchmarks.profile_vae --sizes 704*384 384*256 --out vae.json

Decodes 4 blocks of 3 latents (48 frames) with the full-size Wan2.1 decoder
(random weights, bf16) after priming, once per variant on a freshly built decoder
(the same weights): diffusers' stock modules, channels-last-3d weights, causal
convolutions without a padded copy (`render/liveavatar/cuda_fast_paths.py`), both (what
the runner ships), and both with the compiled channel norm. Every variant's frames are
compared with the stock decoder's on the same latents (max abs difference, PSNR over
[-1, 1]). Decoding one latent per call (as beside the sampler) is timed too. The
stream decoder runs cuDNN's autotuner in every variant.

An earlier call (benchmarks/results/vae-NVIDIA-H200-20261203.json, call 1) also timed
the autotuner alone (no faster than stock) and each residual block compiled (no faster).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch

from avatar_batch.render.geometry import size_for
from avatar_batch.render.liveavatar.config import VaeSizes
from avatar_batch.render.liveavatar.cuda_fast_paths import use_cuda_fast_paths, use_cuda_layout
from avatar_batch.render.liveavatar.vae import use_fast_paths
from benchmarks.render_speed import IMAGE_HW, build_vae

BLOCKS = 4
RUNS = 3


def _fast_convs(model: torch.nn.Module) -> None:
    use_cuda_fast_paths(model, norms=False)


def _runner_with_norms(model: torch.nn.Module) -> None:
    use_fast_paths(model, torch.device("cuda"))
    use_cuda_fast_paths(model, convs=False)


# name -> change to a freshly built stock decoder
VARIANTS: dict[str, Callable[[torch.nn.Module], object]] = {
    "stock": lambda m: None,
    "channels_last": use_cuda_layout,
    "fast_convs": _fast_convs,
    "runner": lambda m: use_fast_paths(m, torch.device("cuda")),  # what `load_vae` does
    "runner+fast_norms": _runner_with_norms,
}


def _latents(h: int, w: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    gen = torch.Generator(device="cuda").manual_seed(0)
    prime = torch.randn(1, 16, 7, h, w, device="cuda", generator=gen)
    return prime, [torch.randn(1, 16, 3, h, w, device="cuda", generator=gen) for _ in range(BLOCKS)]


def decode_48(vae, h: int, w: int, max_latents: int | None = None) -> tuple[float, torch.Tensor]:
    """Seconds to decode the 4 blocks, and the frames (kept on the GPU)."""
    prime, blocks = _latents(h, w)
    decoder = vae.stream_decoder()
    decoder.prime(prime)
    torch.cuda.synchronize()
    began = time.perf_counter()
    frames = [decoder.decode_chunk(block, max_latents=max_latents) for block in blocks]
    torch.cuda.synchronize()
    return time.perf_counter() - began, torch.cat(frames, dim=2)


def _difference(frames: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    diff = (frames - reference).float()
    mse = diff.square().mean().item()
    return {
        "max_abs_diff": round(diff.abs().max().item(), 5),
        "psnr_db": round(10 * math.log10(4.0 / mse), 1) if mse > 0 else float("inf"),
    }


def run_variant(name: str, sizes: list[str], references: dict[str, torch.Tensor]) -> dict[str, dict]:
    vae = build_vae(VaeSizes(), torch.device("cuda"), torch.bfloat16, fast_paths=False)
    VARIANTS[name](vae.model)
    out: dict[str, dict] = {}
    for size in sizes:
        height, width = size_for(size, *IMAGE_HW)
        h, w = height // 8, width // 8
        _, frames = decode_48(vae, h, w)  # warm-up: autotuning and compiles
        runs = sorted(decode_48(vae, h, w)[0] for _ in range(RUNS))
        single = sorted(decode_48(vae, h, w, max_latents=1)[0] for _ in range(RUNS))
        references.setdefault(size, frames)
        out[size] = {
            "decode_48_frames_s": round(runs[RUNS // 2], 4),
            "fps": round(48 / runs[RUNS // 2], 1),
            "one_latent_calls_s": round(single[RUNS // 2], 4),
            **_difference(frames, references[size]),
        }
        print(name, size, json.dumps(out[size]), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", nargs="+", default=["704*384", "384*256"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    references: dict[str, torch.Tensor] = {}
    results: dict[str, object] = {}
    for name in ["stock", *(v for v in args.variants if v != "stock")]:
        try:
            results[name] = run_variant(name, args.sizes, references)
        except RuntimeError as error:  # a variant that cannot compile or run is a result too
            results[name] = {"error": f"{type(error).__name__}: {error}"[:400]}
            print(name, results[name], flush=True)
        torch.cuda.empty_cache()
    document = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "command": "python -m benchmarks.profile_vae --sizes " + " ".join(args.sizes),
        "note": "48 frames (4 blocks of 3 latents) after priming, median of 3; frames compared with 'stock'; cuDNN's autotuner is on in every decoder call",
        "results": results,
    }
    text = json.dumps(document, indent=2)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
