"""The planner's inputs from this machine and its answers in words.

* `detect_machine(device, gpu_memory_gib)`: the GPU (name, memory, compute
  capability) from `render.devices`, the budget from `--gpu-memory`, the host
  memory available from /proc/meminfo;
* `model_config_for(weights_dir)`: the architecture of a weights folder (its
  config.json), or the released `14b` when there is none;
* `request_for(settings, model, machine, height_px, width_px)`: the planner's request;
* `summary(...)`: the decision for `plan`, `doctor` and the telemetry, as a
  JSON-ready dict with a one-line description (or the reason nothing fits), and
  a hint where streamed weights would move far fewer bytes stored in int8 or int4.

Nothing here loads a model.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from avatar_batch.core.errors import UsageError
from avatar_batch.core.records import RenderSettings
from avatar_batch.core.settings import parse_size
from avatar_batch.render import devices
from avatar_batch.render.geometry import size_for
from avatar_batch.render.liveavatar.config import CONFIG_14B, MODEL_CONFIGS, ModelConfig
from avatar_batch.render.liveavatar.memory_model import GIB, VideoShape
from avatar_batch.render.liveavatar.placement import Placement
from avatar_batch.render.liveavatar.placement_plan import (
    LOW_BIT_WEIGHTS,
    STORED_BITS,
    Machine,
    PlacementError,
    PlacementRequest,
    first_fit,
    moved_bytes,
    plan_placement,
)

ASSUMED_CAPABILITY = (9, 0)  # Hopper, for a GPU that is only described by --gpu-memory
# A lower weight format is hinted where it moves at most this share of the bytes per wave.
# On an H200, 384*256 within 24 GiB in int8 (0.39 of the bf16 bytes) ran 2.4x as fast; 704*384
# within 48 GiB in int8 (0.61) was already bound by its kernels at 0.90 of the whole GPU in bf16.
LOW_BIT_HINT_BYTES_RATIO = 0.5
# What each lower format costs, measured on random 14B weights at 384*256 on an H200
# (benchmarks/results/quality-NVIDIA-H200-20261203.json): relative L2 of the sampled latents.
LOW_BIT_LATENT_ERROR = {"int8": "1.3 %", "int4": "10.5 %"}


def detect_machine(device: str = "cuda", gpu_memory_gib: float | None = None, index: int = 0) -> Machine:
    """The compute device as the planner sees it; a CPU device (or no CUDA) gives a CPU machine."""
    host = devices.host_available_bytes()
    found = devices.accelerators() if device.startswith("cuda") else []
    if not found:
        return Machine(None, host_available_bytes=host)
    gpu = found[min(index, len(found) - 1)]
    major, minor = (int(part) for part in gpu.compute_capability.split("."))
    budget = None if gpu_memory_gib is None else int(gpu_memory_gib * GIB)
    return Machine(gpu.name, gpu.memory_bytes, (major, minor), budget, host)


def assumed_or_detected_machine(gpu_memory_gib: float | None) -> Machine:
    """This machine's GPU; without one but with `--gpu-memory`, a GPU of that size
    (compute capability assumed 9.0), so `doctor` can answer "what would fit on a 24 GiB card"."""
    machine = detect_machine("cuda", gpu_memory_gib)
    if machine.gpu_name is None and gpu_memory_gib is not None:
        budget = int(gpu_memory_gib * GIB)
        name = f"a {gpu_memory_gib:g} GiB GPU (sm 9.0 assumed)"
        return Machine(name, budget, ASSUMED_CAPABILITY, None, machine.host_available_bytes)
    return machine


def model_config_for(weights_dir: str | Path | None) -> ModelConfig:
    """The sizes the weights folder's files hold (`checkpoint/sizes.py`); a network whose file
    is missing or unreadable takes the built-in config with the folder's DiT, else the
    release's. A plan is an estimate: `weights verify` and the loaders report broken files."""
    if not weights_dir or not Path(weights_dir).is_dir():
        return CONFIG_14B
    from avatar_batch.render.liveavatar.checkpoint.sizes import read_sizes

    found = read_sizes(Path(weights_dir))
    if found.dit is None:
        return CONFIG_14B
    base = next((named for named in MODEL_CONFIGS.values() if named.dit == found.dit), CONFIG_14B)
    config = replace(
        base, dit=found.dit, t5=found.t5 or base.t5, vae=found.vae or base.vae, audio=found.audio or base.audio
    )
    return config if config == base else replace(config, name="custom")


def settings_video(settings: RenderSettings) -> tuple[int, int]:
    """(height, width) the settings' area gives a portrait of the written aspect ("688*368" ->
    384x640, as `geometry.size_for` sizes a job). A job's own size follows its portrait's
    aspect; the token count, which sets the caches, is about the same."""
    width_px, height_px = parse_size(settings.size)
    return size_for(settings.size, height_px, width_px)


def request_for(
    settings: RenderSettings, model: ModelConfig, machine: Machine, height_px: int, width_px: int
) -> PlacementRequest:
    video = VideoShape(height_px, width_px, settings.frames_per_clip, settings.sample_steps)
    return PlacementRequest(
        model,
        video,
        machine,
        precision=settings.precision,
        weight_format=settings.resolved_weight_format,
        kv_format=settings.kv_format,
        offload=settings.offload,
    )


def describe(placement: Placement) -> str:
    """One line: where everything lives and the expected peak."""
    p = placement
    cond = "cond cache streamed" if p.cond_cache == "stream" else "cond cache on the GPU"
    helpers = "umT5/wav2vec2/VAE lent from the CPU" if p.helpers == "lend" else "umT5/wav2vec2/VAE resident"
    text = (
        f"offload {p.offload}: {p.dit_layers_resident}/{p.dit_layers_total} DiT layers and "
        f"{p.kv_steps_resident}/{p.kv_steps_total} step caches resident, {cond}, {helpers}; "
        f"{p.compute} arithmetic, {p.weight_format} weights, {p.kv_format} KV; expected peak "
        f"{p.gpu_peak_bytes / GIB:.1f} GiB of {p.gpu_budget_bytes / GIB:.1f} GiB"
    )
    if p.host_pinned_bytes:
        text += f", {p.host_pinned_bytes / GIB:.1f} GiB pinned on the host"
    return text


def low_bit_hint(request: PlacementRequest, placement: Placement) -> str | None:
    """Where weights stream from the host, what storing them in fewer bits would move
    instead: int8, then int4, each named while it moves at most half the bytes of the
    placement and the one before it still streams. The planner never picks them by itself
    (they change the pixels), and the host link bounds such runs: 384*256 within 24 GiB on
    an H200 ran at 27 FPS with bf16 weights and 46 with int4, 0.94 of the whole GPU
    (benchmarks/results/NVIDIA-H200-20261203-int4.json)."""
    streams = placement.offload == "blocks" and placement.compute != "fp8"
    if request.machine.gpu_name is None or not streams:
        return None
    if placement.dit_layers_resident == placement.dit_layers_total:
        return None
    now_gib = moved_bytes(request, placement) / GIB
    offers = []
    for weights in LOW_BIT_WEIGHTS:
        if STORED_BITS[weights] >= STORED_BITS[placement.weight_format]:
            continue
        lower_request = replace(request, weight_format=weights)
        lower = first_fit(lower_request)
        if lower is None:
            break
        then_gib = moved_bytes(lower_request, lower) / GIB
        if then_gib > LOW_BIT_HINT_BYTES_RATIO * now_gib:
            break
        offers.append(
            f"--weight-format {weights} would keep {lower.dit_layers_resident}/{lower.dit_layers_total} DiT "
            f"layers resident and move {then_gib:.1f} GiB host->GPU per wave instead of {now_gib:.1f} GiB "
            f"({LOW_BIT_LATENT_ERROR[weights]} relative L2 of latents on random 14B weights)"
        )
        if lower.dit_layers_resident == lower.dit_layers_total:
            break
    return "; ".join(offers) or None


def summary(settings: RenderSettings, model: ModelConfig, machine: Machine) -> dict[str, Any]:
    """The decision for the settings' size on this machine, JSON-ready; `error` when nothing fits."""
    height_px, width_px = settings_video(settings)
    data: dict[str, Any] = {
        "size": f"{width_px}*{height_px}",
        "device": machine.gpu_name or "cpu",
        "gpu_budget_gib": round(machine.budget_bytes / GIB, 2) if machine.gpu_name else None,
        "host_available_gib": round(machine.host_available_bytes / GIB, 2),
    }
    request = request_for(settings, model, machine, height_px, width_px)
    try:
        placement = plan_placement(request)
    except (PlacementError, UsageError) as exc:
        return {**data, "error": str(exc)}
    hint = low_bit_hint(request, placement)
    return {
        **data,
        "decision": describe(placement),
        "expected_peak_gpu_gib": round(placement.gpu_peak_bytes / GIB, 2),
        "placement": placement.to_dict(),
        **({"hint": hint} if hint else {}),
    }
