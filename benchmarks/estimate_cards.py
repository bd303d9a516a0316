"""Paper estimates of streamed Live Avatar speed on cards we cannot measure (RTX 4090, A100-40GB).

    python -m benchmarks.estimate_cards [--results benchmarks/results/NVIDIA-H200-20261203-offload.json]

These are estimates, not measurements. From the H200 runs of the same size and budget they take
the host->GPU bytes per generated frame (the planner places the same layers and caches for the same
budget) and the fastest resident FPS; then, for each card,

* compute-bound FPS = the H200's resident FPS x (card's dense tensor TFLOPS / the H200's);
* link-bound FPS = the card's practical host->GPU rate / bytes per frame;
* the estimate is the range from no overlap of the two (harmonic sum) to full overlap (the smaller),
  the H200 runs overlapping almost fully (their streamed FPS is their link-bound FPS).

Card figures are the vendors' datasheet numbers (dense, no sparsity); practical PCIe rates are
~80 % of the link's peak. Writes benchmarks/results/paper-estimates-<yyyymmdd>.json.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
GB_PER_GIB = 2**30 / 1e9


@dataclass(frozen=True)
class Card:
    name: str
    memory_gib: int  # the budget whose H200 run stands in for it
    bf16_tflops: float  # dense tensor-core bf16 with fp32 accumulation
    fp8_tflops: float | None  # None: no fp8 tensor cores (then bf16 compute, 8-bit storage at most)
    link_gbps: float  # practical host->GPU rate


H200 = Card("NVIDIA H200 (measured)", 141, 989.0, 1979.0, 52.0)  # 52 GB/s: the rate measured while streaming
CARDS = (
    Card("NVIDIA GeForce RTX 4090 (PCIe 4.0 x16)", 24, 165.2, 330.3, 25.0),
    Card("NVIDIA A100-PCIE-40GB (PCIe 4.0 x16)", 40, 312.0, None, 25.0),
)


def estimate(card: Card, resident_fps: float, h2d_gib_per_frame: float, tflops_ratio: float) -> dict[str, float]:
    """FPS bounds of one case on `card` (see the module doc)."""
    compute_fps = resident_fps * tflops_ratio
    link_fps = card.link_gbps / (h2d_gib_per_frame * GB_PER_GIB) if h2d_gib_per_frame > 0 else float("inf")
    no_overlap = 1 / (1 / compute_fps + 1 / link_fps)
    return {
        "compute_bound_fps": round(compute_fps, 2),
        "link_bound_fps": round(link_fps, 2),
        "fps_low": round(no_overlap, 2),
        "fps_high": round(min(compute_fps, link_fps), 2),
    }


def _formats(run: dict[str, Any]) -> tuple[str, str]:
    return run.get("weight_format", "auto"), run.get("kv_format", "bf16")


def latest_runs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last finished run of each (size, budget, weight and KV format): a results file
    may hold the same case from several calls (one before a change, one after)."""
    latest = {(r["size"], r["budget_gib"], *_formats(r)): r for r in runs if r.get("fps") is not None}
    return list(latest.values())


def estimates(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for card in CARDS:
        for run in latest_runs(runs):
            if run.get("budget_gib") != card.memory_gib or run["precision"] != "bf16":
                continue
            same = [
                r
                for r in runs
                if r.get("fps") is not None and r["offload"] in ("none", "model") and r["size"] == run["size"]
            ]
            if not same:
                continue
            resident_fps = max(r["fps"] for r in same)
            bounds = estimate(card, resident_fps, run["h2d_gib_per_frame"], card.bf16_tflops / H200.bf16_tflops)
            out.append(
                {
                    "card": card.name,
                    "size": run["size"],
                    "precision": "bf16",
                    "weight_format": _formats(run)[0],
                    "kv_format": _formats(run)[1],
                    "budget_gib": card.memory_gib,
                    "from_h200": {"resident_fps": resident_fps, "h2d_gib_per_frame": run["h2d_gib_per_frame"]},
                    **bounds,
                }
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(RESULTS / "NVIDIA-H200-20261203-offload.json"))
    args = parser.parse_args()
    runs = json.loads(Path(args.results).read_text(encoding="utf-8"))["runs"]
    doc = {
        "kind": "estimate, not a measurement",
        "command": "python -m benchmarks.estimate_cards --results " + args.results,
        "source": Path(args.results).name,
        "cards": [asdict(card) for card in (H200, *CARDS)],
        "estimates": estimates(runs),
    }
    out = RESULTS / f"paper-estimates-{datetime.now(UTC):%Y%m%d}.json"
    out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    for row in doc["estimates"]:
        formats = f"{row['weight_format']}/{row['kv_format']}"
        print(f"{row['card']:40} {row['size']:8} {formats:10} {row['fps_low']:5.2f}-{row['fps_high']:5.2f} FPS")


if __name__ == "__main__":
    main()
