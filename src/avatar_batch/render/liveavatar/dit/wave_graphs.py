"""CUDA graphs of the DiT's pass over its layers, one per wave signature (issue 13).

At 384*256 a job's kernels are small and Python launches them one by one: a
traced 3-clip fp8 job on an H200 kept the GPU busy 3.3 s of its 6.0 s
(`benchmarks/results/NVIDIA-H200-20261203-graphs.json`, the run without graphs).
A wave's pass over the 40 layers launches the same kernels every time the wave
has the same signature: the same batches of the same step caches, the same ring
slot and window length per call (the Python ints that index the caches), inputs
of the same layouts. So the pass is captured once per signature into a CUDA graph
and then replayed: the host launches one graph instead of thousands of kernels.

What a replay reads must sit where the capture saw it:
* each wave's inputs (tokens, modulation rows, audio tokens, RoPE multipliers)
  are copied into static buffers, one per position and layout, shared by the
  graphs (replays run one at a time on one stream, each after its own copies);
* the caches are the same objects: a signature names them by `id`, and each graph
  holds the objects it was recorded on, so no other object can take their ids.
  `CausalS2VDiT` keeps one set of caches for the jobs of one size, so graphs outlive
  jobs, and calls `clear` when it makes new ones;
* each graph ends by copying its outputs into static output buffers, valid until
  the next `run`.

A signature is captured the second time it is seen. Its first run is eager and
pays what must not happen under capture: dynamo's tracing, cuDNN's plans,
cuBLAS's workspaces. The graphs share one memory pool (they never run at once).
With every wave replayed, that traced 384*256 job took 3.75 s instead of 6.04; at
704*384, whose kernels were already busy, it took longer (the README's Speed
section), so the runner uses graphs only when asked (`--cuda-graphs`).
This module knows nothing of the model: `body` is any function of tensors that
launches work on the current stream and never waits for the GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

Body = Callable[[list[torch.Tensor]], list[torch.Tensor]]
Layout = tuple[tuple[int, ...], tuple[int, ...], torch.dtype]


def layout(tensor: torch.Tensor) -> Layout:
    """Shape, strides and dtype: a compiled graph is specialised on all three, so a static
    buffer keeps the strides of what it stands for (the first layer's tokens are a
    transposed view, whose layout sets how its products round)."""
    return tuple(tensor.shape), tuple(tensor.stride()), tensor.dtype


class Graph(Protocol):
    def replay(self) -> None: ...


class Capture(Protocol):
    """Records `body()`'s work into a graph without running it."""

    def __call__(self, body: Callable[[], None]) -> Graph: ...


class CudaCapture:
    """torch.cuda.CUDAGraph capture; every graph in one memory pool."""

    def __init__(self) -> None:
        self._pool: Any = None

    def __call__(self, body: Callable[[], None]) -> Graph:
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        # A recompile under capture would run inductor's benchmarks, which a capture
        # forbids: make it the error it is instead of an invalidated capture.
        with torch._dynamo.config.patch(error_on_recompile=True), torch.cuda.graph(graph, pool=self._pool):
            body()
        return graph


@dataclass
class _Captured:
    graph: Graph
    inputs: list[torch.Tensor]
    outputs: list[torch.Tensor]
    owners: tuple[object, ...]  # what the graph reads besides its inputs, kept alive with it


@dataclass(frozen=True)
class GraphCounts:
    """For telemetry: graphs recorded (one per signature) and replayed so far."""

    recorded: int
    replayed: int


class WaveGraphs:
    def __init__(self, capture: Capture | None = None):
        self._capture = capture or CudaCapture()
        self._seen: dict[Hashable, list[Layout]] = {}  # key -> the outputs' layouts
        self._graphs: dict[Hashable, _Captured] = {}
        self._buffers: dict[tuple[Hashable, ...], torch.Tensor] = {}
        self.recorded = 0
        self.replayed = 0

    def counts(self) -> GraphCounts:
        return GraphCounts(self.recorded, self.replayed)

    def clear(self) -> None:
        """Drop every graph and buffer (their pool memory returns once nothing refers to it)."""
        self._seen.clear()
        self._graphs.clear()
        self._buffers.clear()

    def run(
        self, key: Hashable, owners: Sequence[object], inputs: Sequence[torch.Tensor], body: Body
    ) -> list[torch.Tensor]:
        """body(inputs), eager the first time `key` is seen, replayed from a graph after that.

        `key` must determine every Python value `body` depends on, and the `layout`
        of every input, naming by `id` the `owners`: the objects holding the
        tensors `body` reads besides `inputs` (kept alive while their graphs are)."""
        captured = self._graphs.get(key)
        if captured is None:
            if key not in self._seen:
                outputs = body(list(inputs))
                self._seen[key] = [layout(t) for t in outputs]
                return outputs
            captured = self._record(key, owners, inputs, body)
        for static, value in zip(captured.inputs, inputs, strict=True):
            static.copy_(value)
        captured.graph.replay()
        self.replayed += 1
        return captured.outputs

    def _record(self, key: Hashable, owners: Sequence[object], inputs: Sequence[torch.Tensor], body: Body) -> _Captured:
        device = inputs[0].device
        static_in = [self._buffer("in", i, layout(t), device) for i, t in enumerate(inputs)]
        static_out = [self._buffer("out", i, kept, device) for i, kept in enumerate(self._seen[key])]

        def recorded() -> None:
            for out, produced in zip(static_out, body(static_in), strict=True):
                out.copy_(produced)

        captured = _Captured(self._capture(recorded), static_in, static_out, tuple(owners))
        self._graphs[key] = captured
        self.recorded += 1
        return captured

    def _buffer(self, role: str, index: int, kept: Layout, device: torch.device) -> torch.Tensor:
        """The static buffer of an input or output position and layout, made outside any capture."""
        key = (role, index, kept)
        if key not in self._buffers:
            shape, stride, dtype = kept
            self._buffers[key] = torch.empty_strided(shape, stride, dtype=dtype, device=device)
        return self._buffers[key]
