"""From a `Placement` (the planner's record) to what the DiT loader and caches do.

The planner decides; this module only translates and refuses what this
machine cannot do: fp8 compute needs fp8 matrix kernels (compute capability
8.9+), and a placement's formats and counts must be ones the runner knows.
`resident_placement` describes the modes that existed before the planner
(everything on the device; `--offload model` lends the helpers).
"""

from __future__ import annotations

import torch

from avatar_batch.core.errors import UsageError
from avatar_batch.render.liveavatar.dit.cache import KV_FORMATS, CachePolicy
from avatar_batch.render.liveavatar.dit.placed import DiTPlacer
from avatar_batch.render.liveavatar.dit.quant import COMPUTES, WEIGHT_FORMATS
from avatar_batch.render.liveavatar.dit.rings import CopyEngine
from avatar_batch.render.liveavatar.placement import Placement

DOUBLE_BUFFERED = 2


def fp8_compute_problem(device: torch.device) -> str | None:
    """Why fp8 matrix products cannot run on `device`, or None when they can."""
    if device.type != "cuda":
        return "fp8 compute needs a CUDA GPU (compute capability 8.9 or newer)"
    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) < (8, 9) or not hasattr(torch, "_scaled_mm"):
        name = torch.cuda.get_device_name(device)
        return (
            f"fp8 compute needs compute capability 8.9 or newer and torch._scaled_mm; "
            f"{name} is sm {major}.{minor} with torch {torch.__version__}"
        )
    return None


def check_placement(placement: Placement, device: torch.device) -> None:
    """UsageError for a placement this runner or this GPU cannot carry out."""
    p = placement
    problems = []
    if p.weight_format not in WEIGHT_FORMATS or p.compute not in COMPUTES or p.kv_format not in KV_FORMATS:
        problems.append(f"formats weight={p.weight_format} compute={p.compute} kv={p.kv_format} are not all known")
    if p.compute == "fp8" and p.weight_format != "fp8":
        problems.append(f"fp8 compute needs fp8 weights, the placement stores {p.weight_format}")
    if not 0 <= p.dit_layers_resident <= p.dit_layers_total or not 0 <= p.kv_steps_resident <= p.kv_steps_total:
        problems.append(
            f"resident counts out of range: layers {p.dit_layers_resident}/{p.dit_layers_total}, "
            f"KV steps {p.kv_steps_resident}/{p.kv_steps_total}"
        )
    if p.prefetch_layers < 1:
        problems.append(f"prefetch_layers must be >= 1, got {p.prefetch_layers}")
    if p.compute == "fp8" and (reason := fp8_compute_problem(device)):
        problems.append(f"{reason}: use --weight-format int8 or fp8 with bf16 compute, or --precision bf16")
    if problems:
        raise UsageError("placement cannot run here: " + "; ".join(problems))


def dit_placer(placement: Placement, engine: CopyEngine) -> DiTPlacer:
    """The loader's per-block plan: which blocks stream, formats, and the cache policy."""
    p = placement
    slots = max(1, p.prefetch_layers)
    policy = CachePolicy(
        kv_format=p.kv_format,
        steps_resident=p.kv_steps_resident if p.kv_steps_resident < p.kv_steps_total else None,
        cond_stream=p.cond_cache == "stream",
        num_slots=slots,
        engine=engine,
    )
    compute = "fp8" if p.compute == "fp8" else "bf16"  # bf16 and fp32 both dequantise 8-bit weights
    return DiTPlacer(p.dit_layers_total, p.dit_layers_resident, slots, p.weight_format, compute, engine, policy)


def resident_placement(offload: str, precision: str, num_layers: int, device: torch.device) -> Placement:
    """Everything of the DiT on `device` (no byte estimates: nothing was planned)."""
    on_cpu = device.type != "cuda"
    fp8 = precision == "fp8"
    return Placement(
        offload=offload,
        compute="fp32" if on_cpu else ("fp8" if fp8 else "bf16"),
        weight_format="fp8" if fp8 else "bf16",
        dit_layers_resident=num_layers,
        dit_layers_total=num_layers,
        kv_format="bf16",
        kv_steps_resident=0,
        kv_steps_total=0,
        cond_cache="gpu",
        helpers="lend" if offload == "model" else "gpu",
        prefetch_layers=DOUBLE_BUFFERED,
        gpu_peak_bytes=0,
        host_pinned_bytes=0,
        gpu_budget_bytes=0,
        host_budget_bytes=0,
    )
