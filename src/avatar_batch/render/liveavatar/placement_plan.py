"""The placement planner: what stays on the GPU and what streams from host memory.

`plan_placement(request)` is a pure function of the architecture, the video
shape, the formats, the GPU (memory, budget, compute capability) and the host
memory available; it returns the `Placement` the runner obeys, or raises
before anything loads:

* `UsageError` when the GPU cannot do the arithmetic asked for (fp8 below sm 8.9);
* `PlacementError` (an `OutOfMemoryError`, so the OOM ladder moves on to its
  next rung without loading anything) when no placement fits, with the
  numbers and the flags that would make it fit.

`auto` takes the first placement that fits, in order of data movement:
everything resident -> helpers (umT5, wav2vec2, VAE) lent from the CPU ->
DiT layers streamed (as many resident as fit) -> KV step caches streamed too
(as many steps resident as fit) -> the cond cache streamed too. It never
chooses fp8 KV caches or 8-bit weights by itself: they change the pixels.

A placement fits when its peak (`estimate`) plus allocator slack plus the
CUDA context stays within the budget, and the host can hold what the plan
keeps there. The decoder works with the largest chunk (3, 2 or 1 latents)
that fits, as `vae.latents_per_call` does at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import astuple, dataclass, replace
from functools import reduce
from itertools import combinations

from avatar_batch.core.errors import OutOfMemoryError, UsageError
from avatar_batch.render.liveavatar.config import ModelConfig
from avatar_batch.render.liveavatar.memory_model import (
    GIB,
    ModelBytes,
    VideoShape,
    activation_bytes,
    decoder_bytes,
    model_bytes,
    sink_cache_layer_bytes,
    step_cache_layer_bytes,
    text_cache_layer_bytes,
)
from avatar_batch.render.liveavatar.placement import Placement

OFFLOADS = ("auto", "none", "model", "blocks")
# Layer buffers in flight when streaming: one computing, one arriving (double buffering).
PREFETCH_LAYERS = 2
# CUDA context, cuBLAS workspaces and loaded kernels live outside the caching
# allocator (so outside max_memory_allocated); about 0.5-1 GiB on current drivers.
CUDA_CONTEXT_BYTES = 1 * GIB
# Reserved-but-unallocated memory at the peak. With expandable segments most of
# the fragmentation seen with fixed segments (2.9 GiB at 704*384, memory.py) is gone.
ALLOCATOR_SLACK_FRACTION = 0.03
# Streamed placements (chosen, or the OOM ladder's `--offload blocks` rung) leave this
# share of the budget unplanned: the copy and decode streams each keep their own cached
# blocks. Their peaks on an H200 land 0-7 % below the estimate; 704*384 within 48 GiB
# with 2/40 layers and 3/4 step caches resident (what this leaves room for) reserved
# 46.8 GiB with no allocation retried (benchmarks/results/NVIDIA-H200-20261203-offload.json).
# (It was a tenth while the estimate missed the audio injectors, which never stream.)
BLOCKS_HEADROOM_FRACTION = 0.04
# Host memory of the process itself (Python, torch, CUDA libraries, frame
# buffers): the H100 runs peaked at 1.98-2.37 GiB RSS holding no weights on the host.
HOST_PROCESS_BYTES = int(2.5 * GIB)
# umT5 over 512 tokens and wav2vec2 over a two-minute answer (hidden states of
# 25 layers, attention over 6,000 frames) need well under this while conditioning.
CONDITIONING_WORKSPACE_BYTES = int(1.5 * GIB)
# fp8 matrix products (torch._scaled_mm) need Ada or Hopper.
FP8_MIN_CAPABILITY = (8, 9)
DECODER_CHUNKS = (3, 2, 1)


class PlacementError(OutOfMemoryError):
    """No placement of this run fits the GPU budget and the host memory."""


@dataclass(frozen=True)
class Machine:
    """The compute device and the host. `gpu_name` None = the CPU computes."""

    gpu_name: str | None
    gpu_total_bytes: int = 0
    capability: tuple[int, int] = (0, 0)
    gpu_budget_bytes: int | None = None  # --gpu-memory; None = the whole card
    host_available_bytes: int = 0

    @property
    def budget_bytes(self) -> int:
        if self.gpu_budget_bytes is None:
            return self.gpu_total_bytes
        return min(self.gpu_budget_bytes, self.gpu_total_bytes)


@dataclass(frozen=True)
class PlacementRequest:
    model: ModelConfig
    video: VideoShape
    machine: Machine
    precision: str = "bf16"  # bf16 | fp8 arithmetic
    weight_format: str = "bf16"  # resolved: bf16 | fp8 | int8 | int4
    kv_format: str = "bf16"
    offload: str = "auto"


@dataclass(frozen=True)
class Knobs:
    """One candidate placement, before its bytes are known."""

    offload: str
    helpers: str  # gpu | lend
    dit_layers_resident: int
    kv_steps_resident: int
    cond_cache: str  # gpu | stream


@dataclass(frozen=True)
class Estimate:
    """Peak GPU bytes by part (the sampling phase, or conditioning if larger) and host bytes by part."""

    gpu: dict[str, int]
    host: dict[str, int]
    decoder_latents: int

    @property
    def gpu_peak_bytes(self) -> int:
        return sum(self.gpu.values())

    @property
    def host_bytes(self) -> int:
        return sum(self.host.values())

    @property
    def host_pinned_bytes(self) -> int:
        return self.host.get("streamed DiT layers", 0) + self.host.get("streamed KV caches", 0)


# --- bytes of one candidate ------------------------------------------------------------


def _run_bytes(machine: Machine) -> int:
    """bf16 on a GPU, fp32 on the CPU (runner.Runtime)."""
    return 2 if machine.gpu_name else 4


def _compute(request: PlacementRequest) -> str:
    return request.precision if request.machine.gpu_name else "fp32"


def _weights(request: PlacementRequest) -> ModelBytes:
    return model_bytes(request.model, request.weight_format, _run_bytes(request.machine), _compute(request))


def _dit_gpu(request: PlacementRequest, knobs: Knobs, weights: ModelBytes) -> dict[str, int]:
    streamed = knobs.dit_layers_resident < len(weights.layers)
    return {
        "DiT trunk": weights.trunk,
        "DiT layers resident": sum(weights.layers[: knobs.dit_layers_resident]),
        "DiT layer buffers": PREFETCH_LAYERS * max(weights.layers) if streamed else 0,
        "dequantise workspace": weights.dequantise_workspace,
    }


def _cache_gpu(request: PlacementRequest, knobs: Knobs) -> dict[str, int]:
    c, video, run = request.model.dit, request.video, _run_bytes(request.machine)
    kv = 1 if request.kv_format == "fp8" else run
    step_layer, sink_layer = step_cache_layer_bytes(c, video, kv), sink_cache_layer_bytes(c, video, run)
    streamed_steps = video.sample_steps - knobs.kv_steps_resident
    return {
        "KV step caches resident": knobs.kv_steps_resident * c.num_layers * step_layer,
        "KV stream buffers": PREFETCH_LAYERS * streamed_steps * step_layer,
        "cond cache sink": sink_layer * (c.num_layers if knobs.cond_cache == "gpu" else PREFETCH_LAYERS),
        "cond cache text": text_cache_layer_bytes(c, run) * c.num_layers,
    }


def _host(request: PlacementRequest, knobs: Knobs, weights: ModelBytes) -> dict[str, int]:
    c, video, run = request.model.dit, request.video, _run_bytes(request.machine)
    kv = 1 if request.kv_format == "fp8" else run
    streamed_steps = video.sample_steps - knobs.kv_steps_resident
    cond = sink_cache_layer_bytes(c, video, run) * c.num_layers if knobs.cond_cache == "stream" else 0
    return {
        "process": HOST_PROCESS_BYTES,
        "helpers lent": weights.helpers if knobs.helpers == "lend" else 0,
        "streamed DiT layers": sum(weights.layers[knobs.dit_layers_resident :]),
        "streamed KV caches": streamed_steps * c.num_layers * step_cache_layer_bytes(c, video, kv) + cond,
    }


def estimate(request: PlacementRequest, knobs: Knobs, decoder_latents: int) -> Estimate:
    """Peak bytes of one candidate with the decoder working `decoder_latents` at a time."""
    weights = _weights(request)
    dit = _dit_gpu(request, knobs, weights)
    fp8 = _compute(request) == "fp8"
    run = _run_bytes(request.machine)
    # Sampling: the VAE stays on the device for the job's decode, the encoders are lent out.
    helpers = weights.helpers if knobs.helpers == "gpu" else weights.vae
    activations = activation_bytes(request.model.dit, request.video, run, fp8)
    decoder = decoder_bytes(request.video, decoder_latents)
    # Resident: the decoder's workspace and the DiT's activations did not add up in the
    # H100 runs (the larger matches the measured peaks best). Streamed placements fill
    # the budget, so they reserve the decoder's room beside the sampler
    # (streaming.side_decode_fits): decoding after sampling cost 6 of 17 s at 704*384
    # within 48 GiB on an H200.
    work = activations + decoder if knobs.offload == "blocks" else max(activations, decoder)
    sampling = {**dit, **_cache_gpu(request, knobs), "helpers": helpers, "activations": work}
    # Conditioning runs before the caches exist; lent helpers visit one at a time (umT5 is the largest).
    visiting = weights.helpers if knobs.helpers == "gpu" else max(weights.t5, weights.wav2vec2, weights.vae)
    conditioning = {**dit, "helpers": visiting, "activations": CONDITIONING_WORKSPACE_BYTES}
    gpu = sampling if sum(sampling.values()) >= sum(conditioning.values()) else conditioning
    return Estimate(gpu, _host(request, knobs, weights), decoder_latents)


def required_gpu_bytes(peak_bytes: int) -> int:
    """What a peak of allocated memory needs of the card: slack and the CUDA context on top."""
    return int(peak_bytes * (1 + ALLOCATOR_SLACK_FRACTION)) + CUDA_CONTEXT_BYTES


def _usable_gpu(request: PlacementRequest, knobs: Knobs) -> int:
    """Streamed placements keep headroom (`BLOCKS_HEADROOM_FRACTION`)."""
    budget = request.machine.budget_bytes
    headroom = BLOCKS_HEADROOM_FRACTION if knobs.offload == "blocks" else 0.0
    return int(budget * (1 - headroom))


def fitting_estimate(request: PlacementRequest, knobs: Knobs, *, host: bool = True) -> Estimate | None:
    """The estimate with the largest decoder chunk that fits, or None if none does
    (`host=False`: fits the GPU, whatever the host holds)."""
    for latents in DECODER_CHUNKS:
        found = estimate(request, knobs, latents)
        fits_gpu = required_gpu_bytes(found.gpu_peak_bytes) <= _usable_gpu(request, knobs)
        if fits_gpu and (not host or found.host_bytes <= request.machine.host_available_bytes):
            return found
    return None


# --- choosing -----------------------------------------------------------------------


def _streaming_candidates(request: PlacementRequest) -> list[Knobs]:
    layers, steps = request.model.dit.num_layers, request.video.sample_steps
    return [
        Knobs("blocks", "lend", k, s, cond)
        for cond in ("gpu", "stream")
        for s in range(steps, -1, -1)
        for k in range(layers, -1, -1)
    ]


def moved_bytes_per_wave(request: PlacementRequest, knobs: Knobs) -> int:
    """Host<->GPU bytes of one wavefront call: streamed layers and caches in, each
    streamed step cache's new block written back (3 of its ring's latent frames)."""
    weights, c, video = _weights(request), request.model.dit, request.video
    kv = 1 if request.kv_format == "fp8" else _run_bytes(request.machine)
    streamed_kv = (video.sample_steps - knobs.kv_steps_resident) * c.num_layers * step_cache_layer_bytes(c, video, kv)
    cond = c.num_layers * sink_cache_layer_bytes(c, video, _run_bytes(request.machine))
    written_back = streamed_kv * 3 // video.window_latent_frames
    return (
        sum(weights.layers[knobs.dit_layers_resident :])
        + streamed_kv
        + written_back
        + (cond if knobs.cond_cache == "stream" else 0)
    )


def moved_bytes(request: PlacementRequest, placement: Placement) -> int:
    """`moved_bytes_per_wave` of a placement the planner gave for `request`."""
    return moved_bytes_per_wave(request, knobs_of(placement))


def candidates(request: PlacementRequest) -> Iterator[Knobs]:
    """Candidates in the order they are tried: the least data movement first."""
    layers, steps = request.model.dit.num_layers, request.video.sample_steps
    if request.offload in ("auto", "none"):
        yield Knobs("none", "gpu", layers, steps, "gpu")
    if request.offload in ("auto", "model"):
        yield Knobs("model", "lend", layers, steps, "gpu")
    if request.offload in ("auto", "blocks"):
        streaming = _streaming_candidates(request)
        if request.offload == "auto":  # nothing streamed is the "model" candidate above
            streaming = streaming[1:]
        yield from sorted(streaming, key=lambda k: moved_bytes_per_wave(request, k))


def check_capability(request: PlacementRequest) -> None:
    """fp8 arithmetic needs fp8 matrix kernels (compute capability 8.9+: Ada, Hopper)."""
    machine = request.machine
    if request.precision != "fp8":
        return
    if machine.gpu_name is None:
        raise UsageError("--precision fp8 needs a CUDA GPU of compute capability 8.9 or newer; use --precision bf16")
    if machine.capability < FP8_MIN_CAPABILITY:
        major, minor = machine.capability
        raise UsageError(
            f"--precision fp8 needs compute capability 8.9 or newer (Ada, Hopper); {machine.gpu_name} is "
            f"sm {major}.{minor}: use --weight-format fp8 --precision bf16 (or --weight-format int8 --precision "
            "bf16) to store the DiT's weights in 8 bits and compute in bf16"
        )


def plan_placement(request: PlacementRequest) -> Placement:
    """The placement of this run, or `PlacementError` with the numbers (see the module doc)."""
    check_capability(request)
    if request.offload not in OFFLOADS:
        raise UsageError(f"unknown offload mode {request.offload!r}; choose one of {', '.join(OFFLOADS)}")
    if request.machine.gpu_name is None:
        return _cpu_placement(request)
    found = first_fit(request)
    if found is None:
        raise PlacementError(_nothing_fits(request))
    return found


def first_fit(request: PlacementRequest) -> Placement | None:
    for knobs in candidates(request):
        found = fitting_estimate(request, knobs)
        if found is not None:
            return _placement(request, knobs, found)
    return None


def _placement(request: PlacementRequest, knobs: Knobs, found: Estimate) -> Placement:
    return Placement(
        offload=knobs.offload,
        compute=_compute(request),  # type: ignore[arg-type]
        weight_format=request.weight_format,  # type: ignore[arg-type]
        dit_layers_resident=knobs.dit_layers_resident,
        dit_layers_total=request.model.dit.num_layers,
        kv_format=request.kv_format,  # type: ignore[arg-type]
        kv_steps_resident=knobs.kv_steps_resident,
        kv_steps_total=request.video.sample_steps,
        cond_cache=knobs.cond_cache,  # type: ignore[arg-type]
        helpers=knobs.helpers,  # type: ignore[arg-type]
        prefetch_layers=PREFETCH_LAYERS,
        gpu_peak_bytes=found.gpu_peak_bytes,
        host_pinned_bytes=found.host_pinned_bytes,
        gpu_budget_bytes=request.machine.budget_bytes,
        host_budget_bytes=request.machine.host_available_bytes,
        decoder_latents=found.decoder_latents,
    )


def _cpu_placement(request: PlacementRequest) -> Placement:
    """On the CPU "gpu" means the compute device and nothing needs to move: `auto` keeps
    everything resident. An explicit mode is honoured as asked (`blocks` streams every
    layer and cache), so the CPU test suite runs the same paths as a GPU."""
    layers, steps = request.model.dit.num_layers, request.video.sample_steps
    knobs = {
        "auto": Knobs("none", "gpu", layers, steps, "gpu"),
        "none": Knobs("none", "gpu", layers, steps, "gpu"),
        "model": Knobs("model", "lend", layers, steps, "gpu"),
        "blocks": Knobs("blocks", "lend", 0, 0, "stream"),
    }[request.offload]
    found = estimate(request, knobs, DECODER_CHUNKS[0])
    return replace(_placement(request, knobs, found), gpu_budget_bytes=request.machine.host_available_bytes)


def keeps(loaded: Placement, request: PlacementRequest) -> bool:
    """Whether a loaded placement also serves `request` (so a run does not reload for
    every job): same formats and arithmetic, the mode asked for (or auto), and it fits."""
    formats = (loaded.weight_format, loaded.kv_format, loaded.compute)
    if formats != (request.weight_format, request.kv_format, _compute(request)):
        return False
    if request.offload not in ("auto", loaded.offload):
        return False
    if request.machine.gpu_name is None:
        return True
    return fitting_estimate(request, knobs_of(loaded)) is not None


def differs_only_in_helpers(a: Placement, b: Placement) -> bool:
    """Switching between these needs no reload: only umT5, wav2vec2 and the VAE move."""
    return astuple(knobs_of(a))[2:] == astuple(knobs_of(b))[2:] and (a.weight_format, a.kv_format, a.compute) == (
        b.weight_format,
        b.kv_format,
        b.compute,
    )


def knobs_of(placement: Placement) -> Knobs:
    return Knobs(
        placement.offload,
        placement.helpers,
        placement.dit_layers_resident,
        placement.kv_steps_resident,
        placement.cond_cache,
    )


# --- when nothing fits ---------------------------------------------------------------


def _gib(value: int) -> str:
    return f"{value / GIB:.1f} GiB"


def _fits(request: PlacementRequest) -> bool:
    try:
        check_capability(request)
    except UsageError:
        return False
    return first_fit(request) is not None


Saver = tuple[str, Callable[[PlacementRequest], PlacementRequest]]
# Weight formats a bf16-computing request may be offered, mildest first: int4 changes the
# pixels most (5 % relative L2 of latents on the tiny model, int8 0.3 %), so it is named
# only where nothing with int8 fits.
LOW_BIT_WEIGHTS = ("int8", "int4")
STORED_BITS = {"bf16": 16, "fp8": 8, "int8": 8, "int4": 4}


def _memory_savers(request: PlacementRequest, weights: str) -> list[Saver]:
    """Flags that shrink a run, each as a change of the request (with the offload left to the
    planner); `weights` is the low-bit weight format offered, if the request stores more bits."""
    video = request.video
    savers: list[Saver] = []
    if request.kv_format != "fp8":
        savers.append(("--kv-format fp8", lambda r: replace(r, kv_format="fp8", offload="auto")))
    if request.precision != "fp8" and STORED_BITS[request.weight_format] > STORED_BITS[weights]:
        savers.append((f"--weight-format {weights}", lambda r: replace(r, weight_format=weights, offload="auto")))
    quick = VideoShape(256, 384, video.frames_per_clip, min(3, video.sample_steps))
    if video.height_px * video.width_px > quick.height_px * quick.width_px:
        savers.append(("--preset quick", lambda r: replace(r, video=quick, offload="auto")))
    return savers


def helpful_flags(request: PlacementRequest) -> list[str]:
    """Changes of the request that would fit, in the order worth trying: single flags, or
    where none fits alone, the fewest memory-saving flags together (a 24 GB card beside
    32 GB of host memory needs both 8-bit weights and an fp8 KV cache); 4-bit weights
    only where no change with 8-bit ones fits."""
    fitting: list[str] = []
    for weights in LOW_BIT_WEIGHTS:
        fitting = fitting or _fitting_flags(request, _memory_savers(request, weights))
    return fitting


def _fitting_flags(request: PlacementRequest, savers: list[Saver]) -> list[str]:
    machine = request.machine
    singles: list[tuple[str, PlacementRequest]] = []
    if request.offload != "auto":
        singles.append(("--offload auto", replace(request, offload="auto")))
    singles += [(flag, change(request)) for flag, change in savers]
    if machine.gpu_budget_bytes is not None and machine.gpu_budget_bytes < machine.gpu_total_bytes:
        singles.append(("a larger --gpu-memory", replace(request, machine=replace(machine, gpu_budget_bytes=None))))
    fitting = [flag for flag, changed in singles if _fits(changed)]
    for count in range(2, len(savers) + 1):
        if fitting:
            break
        fitting = [
            " ".join(flag for flag, _ in combination)
            for combination in combinations(savers, count)
            if _fits(reduce(lambda changed, saver: saver[1](changed), combination, request))
        ]
    return fitting


def _shortfall(request: PlacementRequest) -> str:
    """What is short: the GPU (even its least demanding placement is too big) or the host
    (every placement that fits the GPU keeps too much on the host)."""
    machine = request.machine
    on_gpu = [found for k in candidates(request) if (found := fitting_estimate(request, k, host=False))]
    if not on_gpu:
        least = min(
            (estimate(request, k, DECODER_CHUNKS[-1]) for k in candidates(request)), key=lambda e: e.gpu_peak_bytes
        )
        need = required_gpu_bytes(least.gpu_peak_bytes)
        return f"needs at least {_gib(need)} of GPU memory (budget {_gib(machine.budget_bytes)})"
    host_need = min(found.host_bytes for found in on_gpu)
    return (
        f"fits {_gib(machine.budget_bytes)} of GPU memory only by keeping at least {_gib(host_need)} "
        f"in host memory ({_gib(machine.host_available_bytes)} available)"
    )


def _nothing_fits(request: PlacementRequest) -> str:
    video = request.video
    flags = helpful_flags(request)
    help_text = f"it would fit with {' or '.join(flags)}" if flags else "no change of flags makes it fit"
    return (
        f"Live Avatar at {video.width_px}x{video.height_px}, {video.sample_steps} steps, "
        f"{request.precision} arithmetic, {request.weight_format} weights, {request.kv_format} KV caches, "
        f"offload {request.offload} does not fit {request.machine.gpu_name}: it {_shortfall(request)}; {help_text}"
    )
