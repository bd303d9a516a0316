"""Where each part of the Live Avatar runtime lives for a run: the record the
placement planner writes and the runner obeys.

The planner (a pure function of GPU memory, host memory, architecture, video
size, steps and formats) fills a `Placement` before anything touches the GPU;
the runner places weights and caches exactly as it says, so the same record
explains a run in `plan`, `doctor` and the manifest's telemetry.

Terms:
* "gpu": resident on the compute device for the whole run;
* "stream": kept in pinned host memory and copied to the GPU ahead of use on a
  side CUDA stream (a DiT layer once per wave, which serves every call of
  that wave; a KV-cache layer before the layer that reads it);
* "lend": kept on the host and moved to the GPU for each use (umT5, wav2vec2,
  the VAE under `--offload model`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Where = Literal["gpu", "stream", "lend"]
WeightFormat = Literal["bf16", "fp8", "int8", "int4"]
CacheFormat = Literal["bf16", "fp8"]
Compute = Literal["bf16", "fp8", "fp32"]


@dataclass(frozen=True)
class Placement:
    """One run's decision. Byte counts are the planner's estimates."""

    offload: str  # the resolved mode: none | model | blocks ("auto" never appears here)
    compute: Compute  # arithmetic of the DiT linears: fp8 (scaled_mm, sm >= 8.9), bf16, or fp32 on the CPU
    weight_format: (
        WeightFormat  # how DiT linear weights are stored; int8/int4/fp8 under bf16 compute are dequantised per layer
    )
    dit_layers_resident: int  # DiT layers resident on the GPU; the rest ("stream") come from pinned host memory
    dit_layers_total: int
    kv_format: CacheFormat  # storage of the per-step KV caches
    kv_steps_resident: int  # step caches resident on the GPU; the rest stream per layer with prefetch
    kv_steps_total: int
    cond_cache: Where  # the sink (reference/motion) K/V shared by every step: gpu or stream
    helpers: Where  # umT5, wav2vec2 and the VAE: gpu (resident) or lend
    prefetch_layers: int  # layer buffers in flight ahead of compute when streaming (2 = double buffering)
    gpu_peak_bytes: int  # expected peak of allocated GPU memory
    host_pinned_bytes: int  # pinned host memory the plan keeps (streamed weights and caches)
    gpu_budget_bytes: int  # what the plan had to fit into
    host_budget_bytes: int
    # The most latents one decoder call may take: the planner reserved room for this
    # many, so the decoder must not take the headroom (it did, by +4 GiB at 704*384).
    decoder_latents: int = 3

    @property
    def streams_dit(self) -> bool:
        return self.dit_layers_resident < self.dit_layers_total

    @property
    def streams_kv(self) -> bool:
        return self.kv_steps_resident < self.kv_steps_total or self.cond_cache == "stream"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
