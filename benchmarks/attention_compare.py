"""Attention kernels against the runner's SDPA on the DiT's real self-attention shapes.

    python3 -m benchmarks.attention_compare --out attention.json [--iters 20] \
        [--sizes 704*384,384*256] [--batches 1,2,3,4] [--candidates sdpa,sageattn]
    python3 -m benchmarks.attention_compare --tiny --device cpu --out /tmp/a.json   # checks the script

One denoising call's self-attention: the 3 latent frames of a block attend to the
step cache's window (12 latent frames: the block and the 3 before it) plus the
sink (the reference frame and the FramePack motion tokens, 2.5 frames' worth);
40 heads of 128, bf16, no mask. A wavefront batches up to 4 calls (one per step),
each with its own cache, so keys and values have the batch of the queries.
Tensors are laid out (batch, tokens, heads, head_dim), as the runner holds them.

Candidates (each one that fails to import, build or run is recorded with its
error, and the run goes on):
* `sdpa`: the runner's own `sdpa` (torch SDPA, default backend choice: cuDNN's
  flash kernel on Hopper);
* `sdpa_cudnn`, `sdpa_flash`: the same call with only that torch backend allowed;
* `sageattn`: SageAttention 1.0.6 from PyPI (pure Python + Triton): per-block INT8
  Q·Kᵀ after subtracting K's mean over the tokens (softmax ignores that shift),
  fp16 P·V;
* `cudnn_fp8`: cuDNN's FP8 SDPA through nvidia-cudnn-frontend (a binary wheel
  that calls the libcudnn torch ships; its graph code needs cuda-bindings): q, k
  and v are cast to e4m3 with one scale per tensor on every call, and that cast
  is in the time (the runner's q, k and v are bf16); the output is bf16, or e4m3
  dequantised when cuDNN builds no bf16-output graph (`output` in its notes);
* `cudnn_fp8_kernel`: the same with q, k, v cast once before timing: the kernel
  alone, as if the caches held e4m3.

Per candidate and shape: the median of `--iters` timed calls (CUDA events) after
`--warmup` calls, and the relative L2 error of its output against softmax(QKᵀ/√d)V
computed in fp32 from the same bf16 inputs (q, k, v ~ N(0, 1), the scale of
activations after RMSNorm and RoPE); the bf16 `sdpa` error against that same
reference is each shape's `sdpa_rel_l2`, the yardstick for the others.

Not candidates (the GPU machine has no CUDA toolkit, reaches no package index
and receives at most 64 MiB of wheels, installed from .whl/):
* flashinfer-python 0.7.4: pure Python, but its Hopper prefill kernels are
  compiled at first use with nvcc and ninja (the prebuilt flashinfer-jit-cache is
  not on PyPI), and the wheel alone is 101 MB;
* flash-attn-4 4.0.0b36 (beta): needs no nvcc (CuTe DSL compiles in-process) and
  has an SM90 forward, but nvidia-cutlass-dsl's compiler wheel alone is 92 MB,
  about 100 MB with apache-tvm-ffi, quack-kernels and torch-c-dlpack-ext;
* fa3-fwd 0.0.3: a third-party prebuilt FlashAttention-3 forward whose extension
  links against torch 2.10 (the GPU machine's is 2.11);
* xformers 0.0.35: on Hopper its fast path calls the separate flash_attn_3
  package; without it, it runs the kernels torch's SDPA already has;
* nvidia-cudnn-frontend's bf16 SDPA: the engine torch's cuDNN backend calls.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from avatar_batch.render.liveavatar.config import CONFIG_14B
from avatar_batch.render.liveavatar.dit.attention import sdpa
from avatar_batch.render.liveavatar.dit.cache import E4M3_MAX

# Tokens of one denoising call's self-attention (queries, keys/values) per size. At
# 704*384 the 8x VAE and 2x2 patching make a latent frame 44*24 = 1056 tokens; a
# block is 3 latent frames (3168 queries); the keys are the step cache's 12 latent
# frames (12672) plus the sink, 2.5 frames' worth (2640): 15312. At 384*256 by the
# same rule: 24*16 = 384 tokens a frame, 1152 queries, 12*384 + 960 = 5568 keys.
# (TokenGrid.sink_tokens and DEFAULT_WINDOW_LATENT_FRAMES in dit/cache.py; a test
# holds these numbers to them.)
SIZE_TOKENS = {"704*384": (3168, 15312), "384*256": (1152, 5568)}
HEADS = CONFIG_14B.dit.num_heads  # 40
HEAD_DIM = CONFIG_14B.dit.head_dim  # 128
REFERENCE_SCORES_BYTES = 2**30  # fp32 scores held at once by the reference (queries are chunked to fit)
MIB = 2**20

Call = Callable[[], torch.Tensor]
Prepared = tuple[Call, dict[str, Any]]  # the call to time, and facts about how it runs


@dataclass(frozen=True)
class AttentionShape:
    size: str
    batch: int
    heads: int
    head_dim: int
    q_tokens: int
    kv_tokens: int

    @property
    def flops(self) -> float:
        """Multiply-adds of Q·Kᵀ and P·V, two flops each."""
        return 4.0 * self.batch * self.heads * self.q_tokens * self.kv_tokens * self.head_dim


def tiny_shape(batch: int) -> AttentionShape:
    """Small enough for a CPU check of the whole script in a second."""
    return AttentionShape("tiny", batch, heads=2, head_dim=32, q_tokens=64, kv_tokens=128)


def shapes_for(sizes: list[str], batches: list[int], tiny: bool) -> list[AttentionShape]:
    if tiny:
        return [tiny_shape(batch) for batch in batches]
    unknown = [size for size in sizes if size not in SIZE_TOKENS]
    if unknown:
        raise SystemExit(f"unknown size(s) {unknown}; known: {sorted(SIZE_TOKENS)}")
    return [AttentionShape(size, batch, HEADS, HEAD_DIM, *SIZE_TOKENS[size]) for size in sizes for batch in batches]


def make_inputs(
    shape: AttentionShape, device: torch.device, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q (B, Lq, H, D), k and v (B, Lk, H, D) in bf16, N(0, 1): RMSNorm leaves q and k at unit RMS."""
    generator = torch.Generator(device=device).manual_seed(seed)

    def randn(tokens: int) -> torch.Tensor:
        dims = (shape.batch, tokens, shape.heads, shape.head_dim)
        return torch.randn(dims, generator=generator, device=device, dtype=torch.bfloat16)

    return randn(shape.q_tokens), randn(shape.kv_tokens), randn(shape.kv_tokens)


# --- the measure: an fp32 reference and the relative error -----------------------------


@contextmanager
def exact_fp32_matmul() -> Iterator[None]:
    """TF32 would round the reference's products to 10 mantissa bits, near bf16's own error."""
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved


def query_chunk(heads: int, kv_tokens: int, max_scores_bytes: int) -> int:
    """Queries per chunk so that one chunk's fp32 scores (heads x chunk x kv_tokens) fit the bound."""
    return max(1, max_scores_bytes // (heads * kv_tokens * 4))


def reference_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, max_scores_bytes: int = REFERENCE_SCORES_BYTES
) -> torch.Tensor:
    """softmax(Q·Kᵀ/√d)·V in fp32 by plain math, (B, Lq, H, D) in and out; queries in chunks."""
    batch, q_tokens, heads, head_dim = q.shape
    chunk = query_chunk(heads, k.shape[1], max_scores_bytes)
    out = torch.empty(q.shape, dtype=torch.float32, device=q.device)
    with exact_fp32_matmul():
        for b in range(batch):
            keys, values = k[b].float().transpose(0, 1), v[b].float().transpose(0, 1)  # (H, Lk, D)
            for start in range(0, q_tokens, chunk):
                queries = q[b, start : start + chunk].float().transpose(0, 1)  # (H, chunk, D)
                scores = queries @ keys.transpose(1, 2) / math.sqrt(head_dim)
                out[b, start : start + chunk] = (scores.softmax(dim=-1) @ values).transpose(0, 1)
    return out


def relative_l2(got: torch.Tensor, want: torch.Tensor) -> float:
    """||got - want|| / ||want|| summed in fp64, where the tensors are: the measure of
    avatar_batch.render.quality.rel_l2, without moving a 4 x 3168 x 40 x 128 output to the host."""
    if got.shape != want.shape:
        raise ValueError(f"relative_l2: shapes differ, got {tuple(got.shape)} against {tuple(want.shape)}")
    scale = torch.linalg.vector_norm(want, dtype=torch.float64).item()
    if scale == 0.0:
        raise ValueError("relative_l2: the reference is all zeros, so a relative error has no meaning")
    diff = got.float() - want.float()
    return torch.linalg.vector_norm(diff, dtype=torch.float64).item() / scale


# --- candidates: each prepares a call on its own copies of q, k, v ----------------------


def prepare_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Prepared:
    return (lambda: sdpa(q, k, v)), {}


def sdpa_with_only(backend_name: str) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Prepared]:
    """The runner's call with torch allowed a single backend: torch raises where it cannot serve it."""

    def prepare(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Prepared:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        backend = getattr(SDPBackend, backend_name)

        def call() -> torch.Tensor:
            with sdpa_kernel(backend):
                return sdpa(q, k, v)

        return call, {"backend": backend_name}

    return prepare


def prepare_sageattn(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Prepared:
    """SageAttention takes the runner's layout as "NHD". It subtracts K's mean from k in place
    (softmax is unchanged by it, and a second call subtracts about zero), hence the copies."""
    from sageattention import sageattn

    notes = {"version": metadata.version("sageattention"), "tensor_layout": "NHD"}
    return (lambda: sageattn(q, k, v, tensor_layout="NHD", is_causal=False)), notes


def _cudnn_fp8_graph(cudnn: Any, dims: tuple[int, int, int, int, int], out_type: Any, handle: Any) -> tuple[Any, dict]:
    """cuDNN's FP8 SDPA graph for (B, L, H, D) storage (cuDNN reads it as B, H, L, D through
    strides), inference only; returns the graph and its tensors by name."""
    batch, q_tokens, kv_tokens, heads, head_dim = dims
    graph = cudnn.pygraph(
        io_data_type=cudnn.data_type.FP8_E4M3,
        intermediate_data_type=cudnn.data_type.FLOAT,
        compute_data_type=cudnn.data_type.FLOAT,
        handle=handle,
    )

    def bhld(tokens: int) -> dict[str, list[int]]:
        return {
            "dim": [batch, heads, tokens, head_dim],
            "stride": [tokens * heads * head_dim, head_dim, heads * head_dim, 1],
        }

    fp8, fp32, one = cudnn.data_type.FP8_E4M3, cudnn.data_type.FLOAT, {"dim": [1, 1, 1, 1], "stride": [1, 1, 1, 1]}
    tensors = {
        name: graph.tensor(name=name, data_type=fp8, **bhld(n))
        for name, n in (("q", q_tokens), ("k", kv_tokens), ("v", kv_tokens))
    }
    scalars = ("descale_q", "descale_k", "descale_v", "descale_s", "scale_s", "scale_o")
    tensors.update({name: graph.tensor(name=name, data_type=fp32, **one) for name in scalars})
    o, _stats, amax_s, amax_o = graph.sdpa_fp8(
        **tensors, is_inference=True, attn_scale=1.0 / math.sqrt(head_dim), use_causal_mask=False, name="attention"
    )
    o.set_output(True).set_dim(bhld(q_tokens)["dim"]).set_stride(bhld(q_tokens)["stride"]).set_data_type(out_type)
    for amax in (amax_s, amax_o):
        amax.set_output(True).set_dim(one["dim"]).set_stride(one["stride"]).set_data_type(fp32)
    graph.build([cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
    return graph, {**tensors, "o": o, "amax_s": amax_s, "amax_o": amax_o}


def _to_e4m3(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x scaled so its largest magnitude is e4m3's largest, and the descale that undoes it
    (a (1, 1, 1, 1) device tensor: no host sync). The clamp keeps bf16 rounding from
    pushing an element past 448, which e4m3 has no code for."""
    scale = E4M3_MAX / x.abs().amax().float().clamp_min(1e-12)
    return (x * scale).clamp_(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn), (1.0 / scale).view(1, 1, 1, 1)


def cudnn_fp8(cast_in_call: bool) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Prepared]:
    """cuDNN's FP8 SDPA on e4m3 copies of q, k, v with one scale per tensor. `cast_in_call`:
    each call casts (what the runner, whose q, k, v are bf16, would pay); otherwise they are
    cast once before timing: the kernel alone, as if the caches already held e4m3."""

    def prepare(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Prepared:
        torch.backends.cudnn.version()  # loads torch's libcudnn, which cudnn-frontend then finds in the process
        import cudnn

        handle = cudnn.create_handle()
        cudnn.set_stream(handle, torch.cuda.current_stream(q.device).cuda_stream)
        run, notes = _cudnn_fp8_runner(cudnn, handle, q, k)
        notes["cast"] = "every call, in the time" if cast_in_call else "once, before timing"
        if cast_in_call:
            return (lambda: run(_to_e4m3(q), _to_e4m3(k), _to_e4m3(v))), notes
        cast = _to_e4m3(q), _to_e4m3(k), _to_e4m3(v)
        return (lambda: run(*cast)), notes

    return prepare


E4m3 = tuple[torch.Tensor, torch.Tensor]  # e4m3 values and their (1, 1, 1, 1) descale


def _cudnn_fp8_runner(
    cudnn: Any, handle: Any, q: torch.Tensor, k: torch.Tensor
) -> tuple[Callable[[E4m3, E4m3, E4m3], torch.Tensor], dict[str, Any]]:
    """The built graph for q's and k's shapes, as a function of e4m3 q, k, v returning bf16."""
    (batch, q_tokens, heads, head_dim), kv_tokens = q.shape, k.shape[1]
    dims = (batch, q_tokens, kv_tokens, heads, head_dim)
    notes: dict[str, Any] = {"version": cudnn.__version__, "cudnn": str(cudnn.backend_version_string())}
    try:
        graph, tensors = _cudnn_fp8_graph(cudnn, dims, cudnn.data_type.BFLOAT16, handle)
        out_dtype = torch.bfloat16
    except Exception as exc:  # noqa: BLE001 - cuDNN may build only the e4m3-output graph: try that one
        notes["bf16_output_error"] = f"{type(exc).__name__}: {exc}"[:500]
        graph, tensors = _cudnn_fp8_graph(cudnn, dims, cudnn.data_type.FP8_E4M3, handle)
        out_dtype = torch.float8_e4m3fn
    notes["output"] = str(out_dtype)
    workspace = torch.empty(graph.get_workspace_size(), device=q.device, dtype=torch.uint8)
    out = torch.empty(q.shape, device=q.device, dtype=out_dtype)
    amax_s, amax_o = (torch.empty((1, 1, 1, 1), device=q.device, dtype=torch.float32) for _ in range(2))
    # P is in [0, 1]: 448 maps 1 to e4m3's largest value, whatever the shape.
    scale_s = torch.full((1, 1, 1, 1), E4M3_MAX, device=q.device)
    descale_s = 1.0 / scale_s

    def run(q8: E4m3, k8: E4m3, v8: E4m3) -> torch.Tensor:
        descale_v = v8[1]
        # O is a convex combination of v's rows, so |O| <= max|v|: v's scale fits an e4m3 O; a bf16 O needs none.
        scale_o = 1.0 / descale_v if out_dtype == torch.float8_e4m3fn else torch.ones_like(descale_v)
        feeds = {"q": q8[0], "k": k8[0], "v": v8[0], "descale_q": q8[1], "descale_k": k8[1], "descale_v": descale_v}
        feeds |= {"descale_s": descale_s, "scale_s": scale_s, "scale_o": scale_o}
        feeds |= {"o": out, "amax_s": amax_s, "amax_o": amax_o}
        graph.execute({tensors[name]: value for name, value in feeds.items()}, workspace, handle=handle)
        return out if out_dtype == torch.bfloat16 else (out.float() * descale_v).to(torch.bfloat16)

    return run, notes


CANDIDATES: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Prepared]] = {
    "sdpa": prepare_sdpa,
    "sdpa_cudnn": sdpa_with_only("CUDNN_ATTENTION"),
    "sdpa_flash": sdpa_with_only("FLASH_ATTENTION"),
    "sageattn": prepare_sageattn,
    "cudnn_fp8": cudnn_fp8(cast_in_call=True),
    "cudnn_fp8_kernel": cudnn_fp8(cast_in_call=False),
}
REFERENCE_CANDIDATE = "sdpa"  # the runner's attention: every speed-up and error is against it


# --- measuring ------------------------------------------------------------------------


def time_calls_ms(call: Call, iters: int, warmup: int, device: torch.device) -> list[float]:
    """Milliseconds per call: CUDA events around each call on the GPU (the kernels' time,
    not the host's), the wall clock on the CPU."""
    for _ in range(warmup):
        call()
    if device.type != "cuda":
        times_ms = []
        for _ in range(iters):
            began_s = time.perf_counter()
            call()
            times_ms.append((time.perf_counter() - began_s) * 1e3)
        return times_ms
    torch.cuda.synchronize(device)
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    for start, end in zip(starts, ends):
        start.record()
        call()
        end.record()
    torch.cuda.synchronize(device)
    return [start.elapsed_time(end) for start, end in zip(starts, ends)]


def measure(
    name: str,
    prepare: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Prepared],
    inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    reference: torch.Tensor,
    shape: AttentionShape,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """One candidate on one shape, on its own copies of the inputs: its error, then its times."""
    device = reference.device
    on_gpu = device.type == "cuda"
    if on_gpu:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    q, k, v = (x.clone() for x in inputs)
    base_bytes = torch.cuda.memory_allocated(device) if on_gpu else 0
    call, notes = prepare(q, k, v)
    error = relative_l2(call(), reference)  # the first call also compiles what the kernel compiles
    times_ms = time_calls_ms(call, args.iters, args.warmup, device)
    time_ms = statistics.median(times_ms)
    result: dict[str, Any] = {
        "name": name,
        "time_ms": round(time_ms, 4),
        "time_ms_min": round(min(times_ms), 4),
        "tflops": round(shape.flops / (time_ms * 1e-3) / 1e12, 2),
        "rel_l2": round(error, 6),
    }
    if on_gpu:
        result["peak_extra_mib"] = round((torch.cuda.max_memory_allocated(device) - base_bytes) / MIB, 1)
    return {**result, **({"notes": notes} if notes else {})}


def run_shape(shape: AttentionShape, device: torch.device, args: argparse.Namespace) -> dict[str, Any]:
    inputs = make_inputs(shape, device, args.seed)
    reference = reference_attention(*inputs)
    candidates: list[dict[str, Any]] = []
    for name, prepare in CANDIDATES.items():
        if args.candidates and name not in args.candidates:
            continue
        try:
            candidates.append(measure(name, prepare, inputs, reference, shape, args))
        except Exception as exc:  # noqa: BLE001 - recorded; the other candidates still run
            candidates.append({"name": name, "error": f"{type(exc).__name__}: {exc}"[:2000]})
        if device.type == "cuda":
            torch.cuda.empty_cache()  # a failed or greedy candidate leaves the next one the whole GPU
        print(f"{shape.size} x{shape.batch} {_row(candidates[-1])}", flush=True)
    compare_to_runner(candidates)
    runner = next((c for c in candidates if c["name"] == REFERENCE_CANDIDATE and "rel_l2" in c), None)
    return {**asdict(shape), "sdpa_rel_l2": runner["rel_l2"] if runner else None, "candidates": candidates}


def compare_to_runner(candidates: list[dict[str, Any]]) -> None:
    """Each measured candidate's speed-up over the runner's sdpa, and its error in units of sdpa's."""
    runner = next((c for c in candidates if c["name"] == REFERENCE_CANDIDATE and "time_ms" in c), None)
    if runner is None:
        return
    for candidate in candidates:
        if "time_ms" in candidate:
            candidate["speedup_vs_sdpa"] = round(runner["time_ms"] / candidate["time_ms"], 3)
            candidate["rel_l2_vs_sdpa"] = round(candidate["rel_l2"] / max(runner["rel_l2"], 1e-12), 2)


# --- driver ---------------------------------------------------------------------------


def document(argv: list[str], device: torch.device, runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "command": " ".join(["python3 -m benchmarks.attention_compare", *argv]),
        "runs": runs,
    }


def _row(candidate: dict[str, Any]) -> str:
    if "error" in candidate:
        return f"{candidate['name']:11} ERROR {candidate['error'][:160]}"
    return (
        f"{candidate['name']:11} {candidate['time_ms']:9.3f} ms {candidate['tflops']:7.1f} TFLOP/s "
        f"rel_l2 {candidate['rel_l2']:.2e}"
    )


def _print_table(runs: list[dict[str, Any]]) -> None:
    print(f"{'size':8} {'batch':>5} {'candidate':11} {'ms':>9} {'speedup':>7} {'rel_l2':>9} {'x sdpa err':>10}")
    for run in runs:
        for c in run["candidates"]:
            if "error" in c:
                print(f"{run['size']:8} {run['batch']:5} {c['name']:11} error: {c['error'][:100]}")
                continue
            print(
                f"{run['size']:8} {run['batch']:5} {c['name']:11} {c['time_ms']:9.3f} "
                f"{c.get('speedup_vs_sdpa', math.nan):7.3f} {c['rel_l2']:9.2e} {c.get('rel_l2_vs_sdpa', math.nan):10.2f}"
            )


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def _names(text: str) -> list[str]:
    return [part for part in text.split(",") if part]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", required=True, help="where the JSON goes")
    parser.add_argument("--iters", type=int, default=20, help="timed calls per candidate and shape")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls before them")
    parser.add_argument("--sizes", type=_names, default=list(SIZE_TOKENS), help="e.g. 704*384,384*256")
    parser.add_argument("--batches", type=_ints, default=[1, 2, 3, 4], help="calls per wavefront batch, e.g. 1,4")
    parser.add_argument("--candidates", type=_names, default=[], help=f"a subset of {','.join(CANDIDATES)}")
    parser.add_argument("--tiny", action="store_true", help="2 heads of 32, 64 queries, 128 keys: checks the script")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    device = torch.device(args.device)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    for shape in shapes_for(args.sizes, args.batches, args.tiny):
        runs.append(run_shape(shape, device, args))
        out.write_text(
            json.dumps(document(argv, device, runs), indent=2) + "\n", encoding="utf-8"
        )  # kept if a later shape dies
    _print_table(runs)


if __name__ == "__main__":
    main()
