"""What a 4-bit linear costs over a bf16 one on a GPU: expanding the codes, then the product.

    python3 -m benchmarks.int4_expand --out FILE.json [--iters 50]
    python3 -m benchmarks.int4_expand --tiny --device cpu --out /tmp/x.json   # checks the script

For the DiT's linear shapes (dim 5120, FFN 13824) and the token counts of one wave
(384*256: 3 calls of 1,152 tokens; 704*384: 4 calls of 3,168), each compiled with
torch.compile as the blocks are (dit/compiled.py):

* `bf16`: F.linear with a bf16 weight (what the int4 path must approach);
* `int4`: `Int4Linear` as stored today (codes 2j and 2j + 1 in one byte);
* `int4_halves`: the same codes packed as column j and j + in/2 in one byte, so the
  expansion writes two contiguous halves instead of interleaving;
* `expand_only`: `Int4Linear.weight` alone, the expansion without the product.

Median milliseconds over `--iters` calls after warm-up (CUDA events), and the
expansion's effective bandwidth (bytes read + written / time).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from avatar_batch.render.liveavatar.dit.quant import INT4_LEVELS, Int4Linear
from benchmarks.attention_compare import time_calls_ms

LINEARS = {
    "attention 5120x5120": (5120, 5120),
    "ffn up 5120->13824": (5120, 13824),
    "ffn down 13824->5120": (13824, 5120),
}
WARMUP_CALLS = 3
WAVE_TOKENS = {"384*256": 3 * 1152, "704*384": 4 * 3168}


class Int4Halves(nn.Module):
    """The alternative layout: byte j holds column j (low nibble) and column j + in/2 (high)."""

    def __init__(self, stored: Int4Linear):
        super().__init__()
        codes = torch.stack((stored.weight_packed & 0xF, stored.weight_packed >> 4), dim=-1).flatten(1)
        half = codes.shape[1] // 2
        self.register_buffer("packed", codes[:, :half] | (codes[:, half:] << 4))
        self.register_buffer("low", stored.weight_low)
        self.register_buffer("step", stored.weight_step)
        self.bias = stored.bias

    def weight(self, dtype: torch.dtype) -> torch.Tensor:
        codes = torch.cat((self.packed & 0xF, self.packed >> 4), dim=1)
        out_features, in_features = codes.shape
        c = codes.to(dtype).view(out_features, self.step.shape[1], -1)
        w = torch.addcmul(self.low.to(dtype).unsqueeze(-1), c, self.step.to(dtype).unsqueeze(-1))
        return w.view(out_features, in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight(x.dtype), None if self.bias is None else self.bias.to(x.dtype))


def timed_ms(call: Callable[[], Any], device: torch.device, iters: int) -> float:
    """Median milliseconds per call after 3 warm-up calls (attention_compare's timer)."""
    return statistics.median(time_calls_ms(call, iters, WARMUP_CALLS, device))


def measure(in_features: int, out_features: int, tokens: int, device: torch.device, iters: int) -> dict[str, Any]:
    dtype = torch.bfloat16
    plain = nn.Linear(in_features, out_features).to(device=device, dtype=dtype)
    stored = Int4Linear(plain).to(device)
    halves = Int4Halves(stored).to(device)
    x = torch.randn(tokens, in_features, device=device, dtype=dtype)
    compile_ = torch.compile if device.type == "cuda" else (lambda f: f)
    calls = {
        "bf16": compile_(lambda: plain(x)),
        "int4": compile_(lambda: stored(x)),
        "int4_halves": compile_(lambda: halves(x)),
        "expand_only": compile_(lambda: stored.weight(dtype)),
    }
    with torch.no_grad():
        times = {name: round(timed_ms(call, device, iters), 4) for name, call in calls.items()}
        same = torch.equal(halves.weight(dtype), stored.weight(dtype))
    weights = in_features * out_features
    expand_bytes = weights // 2 + weights * 2
    return {
        "in": in_features,
        "out": out_features,
        "tokens": tokens,
        "time_ms": times,
        "int4_over_bf16": round(times["int4"] / times["bf16"], 3),
        "int4_halves_over_bf16": round(times["int4_halves"] / times["bf16"], 3),
        "expand_gbps": round(expand_bytes / (times["expand_only"] * 1e-3) / 1e9, 1),
        "layouts_agree": same,
        "levels": INT4_LEVELS + 1,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="small shapes, for a CPU check of the script")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    linears = {"tiny": (256, 128)} if args.tiny else LINEARS
    tokens = {"tiny": 16} if args.tiny else WAVE_TOKENS
    runs = [
        {"linear": name, "wave": wave, **measure(i, o, n, device, args.iters)}
        for name, (i, o) in linears.items()
        for wave, n in tokens.items()
    ]
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "command": "python -m benchmarks.int4_expand " + " ".join(sys.argv[1:] if argv is None else argv),
        "runs": runs,
    }
    args.out.write_text(json.dumps(result, indent=1))
    for run in runs:
        print(run["linear"], run["wave"], run["time_ms"], run["expand_gbps"], "GB/s", run["layouts_agree"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
