"""Loads the Live Avatar networks once and turns one request into conditioning and frames.

`LiveAvatarRunner` owns the DiT (resident for the run) and a `ComponentHost`
with umT5, wav2vec2 and the VAE (placed by the offload mode). Per job:

1. `plan_job`: video size from the preset area and the portrait's aspect,
   clip count from the speech length (capped by `num_clip`), every model
   limit checked (`UsageError`) - before any model loads or runs.
2. `condition`: text, audio and portrait conditioning, once per job; the
   portrait's latents are kept (on the CPU, a few MB) for later jobs with the
   same picture and size, since a FAQ library reuses a handful of personas.
3. `frames`: sink prefill, block sampling and streaming decode, pulled frame
   by frame; with `sink_refresh`, the sink is re-seeded from clip 0's output
   once clip 0 is sampled (`conditioning.refreshed_sink`).

Device: CUDA when available (bf16), else the CPU (fp32). Nothing here knows
about the renderer protocol or the batch; `renderer.py` adapts it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Generator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from avatar_batch.core.errors import UsageError
from avatar_batch.core.fsio import file_sha256
from avatar_batch.core.records import RenderRequest
from avatar_batch.render.geometry import size_for
from avatar_batch.render.image import load_rgb
from avatar_batch.render.liveavatar.audio_encoder import load_audio_encoder, load_speech_16k
from avatar_batch.render.liveavatar.checkpoint import CheckpointLayout, load_dit
from avatar_batch.render.liveavatar.conditioning import (
    Conditioning,
    audio_frames,
    clips_for_speech,
    motion_latents,
    portrait_pixels,
    prompt_states,
    reference_latent,
    refreshed_sink,
)
from avatar_batch.render.liveavatar.config import DiTConfig
from avatar_batch.render.liveavatar.dit import CausalS2VDiT
from avatar_batch.render.liveavatar.dit.compiled import compile_blocks
from avatar_batch.render.liveavatar.dit.rings import CopyEngine
from avatar_batch.render.liveavatar.dit.wave_graphs import GraphCounts, WaveGraphs
from avatar_batch.render.liveavatar.limits import ClipGeometry, check_geometry
from avatar_batch.render.liveavatar.memory import ComponentHost, use_expandable_segments
from avatar_batch.render.liveavatar.placement import Placement
from avatar_batch.render.liveavatar.placing import check_placement, dit_placer, fp8_compute_problem, resident_placement
from avatar_batch.render.liveavatar.sampler import (
    LatentsSink,
    SamplerOptions,
    SamplingPlan,
    SinkRefresh,
    sample_blocks,
    seeded_noise,
    sink_distances,
    tapped,
)
from avatar_batch.render.liveavatar.schedule import dmd_schedule
from avatar_batch.render.liveavatar.streaming import stream_frames
from avatar_batch.render.liveavatar.telemetry import PhaseClock
from avatar_batch.render.liveavatar.text_encoder import load_text_encoder
from avatar_batch.render.liveavatar.vae import CHUNK_LATENTS, Vae, load_vae
from avatar_batch.render.liveavatar.visits import PinnedVisits, encoder_mover

PORTRAIT_CACHE_ENTRIES = 8
# A persona's prompt recurs in every answer: its umT5 states (at most 512 x 4096, 4 MiB in
# bf16) are kept, so umT5 runs once per prompt, not once per job (lent, it visits the GPU).
PROMPT_CACHE_ENTRIES = 32


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    dtype: torch.dtype
    compile: bool = False  # torch.compile the DiT blocks (dit/compiled.py)
    cuda_graphs: bool = False  # replay each wave's layer pass as a CUDA graph when nothing streams (dit/wave_graphs.py)

    @classmethod
    def detect(cls, device: str | None = None, cuda_graphs: bool = False) -> Runtime:
        """CUDA in bf16 with compiled blocks when available (or asked for), else
        the CPU in fp32, eager (compiling costs more than it saves on the tiny model);
        CUDA graphs only when asked for, and only on CUDA."""
        chosen = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        on_gpu = chosen.type == "cuda"
        return cls(
            chosen, torch.bfloat16 if on_gpu else torch.float32, compile=on_gpu, cuda_graphs=cuda_graphs and on_gpu
        )

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")


@dataclass(frozen=True)
class JobPlan:
    sampling: SamplingPlan
    samples_16k: np.ndarray  # the speech, mono float32 in [-1, 1]
    sink_refresh: bool = False  # re-seed the sink from clip 0's output (settings.sink_refresh)


def vae_mover(visits: PinnedVisits):
    """Mover for the VAE: a new `Vae` on the device (its latent statistics are made for one device)."""

    def move(vae: Vae, device: torch.device) -> Vae:
        visits.move(vae.model, device)
        return Vae(vae.model, vae.sizes, device, vae.dtype)

    return move


class LiveAvatarRunner:
    def __init__(self, weights_dir: Path, runtime: Runtime):
        self.layout = CheckpointLayout.at(Path(weights_dir))
        self.runtime = runtime
        if runtime.device.type == "cuda":
            use_expandable_segments()  # before the first CUDA allocation
        self.dit: CausalS2VDiT | None = None
        self.host: ComponentHost | None = None
        self.placement: Placement | None = None
        self.copies: CopyEngine | None = None  # host <-> device traffic of streamed blocks and caches
        self.load_seconds: dict[str, float] = {}  # wall seconds per network of the last load
        self._portraits: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._prompt_states = lru_cache(maxsize=PROMPT_CACHE_ENTRIES)(self._encode_prompt)

    # --- 1. plan (no model) ------------------------------------------------------------

    def plan_job(self, request: RenderRequest) -> JobPlan:
        settings = request.settings
        image = load_rgb(request.image_path)
        height_px, width_px = size_for(settings.size, image.height, image.width)
        samples = load_speech_16k(request.speech.model_wav)
        clips = clips_for_speech(len(samples), settings.frames_per_clip, settings.num_clip)
        geometry = ClipGeometry(height_px, width_px, settings.frames_per_clip, clips)
        check_geometry(geometry, settings.sample_steps)
        sampling = SamplingPlan(geometry, dmd_schedule(settings.sample_steps), settings.seed)
        return JobPlan(sampling, samples, sink_refresh=settings.sink_refresh)

    # --- loading ------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self.dit is not None

    def load(self, placement: Placement) -> None:
        """Every network, once, where `placement` says. Helpers load straight onto the device
        they wait on; the DiT's resident parts load onto the compute device, its streamed
        blocks into pinned host memory block by block (LoRA merged, then quantised as the
        placement's formats say), before the blocks are compiled."""
        if self.loaded:
            return
        check_placement(placement, self.runtime.device)
        device, dtype = self.runtime.device, self.runtime.dtype
        offload = helper_offload(placement)
        host = ComponentHost(device, offload)
        park = torch.device("cpu") if offload == "model" else device
        ckpt = self.layout.dit_dir
        visits = PinnedVisits()
        clock = PhaseClock(synchronize=torch.cuda.synchronize if device.type == "cuda" else None)
        with clock.phase("text"):
            host.add("text", load_text_encoder(ckpt, device=park, dtype=dtype), park, mover=encoder_mover(visits))
        with clock.phase("audio"):
            host.add("audio", load_audio_encoder(ckpt, device=park, dtype=dtype), park, mover=encoder_mover(visits))
        with clock.phase("vae"):
            vae = load_vae(ckpt, device=park, dtype=dtype, compute_device=device)
            host.add("vae", vae, park, mover=vae_mover(visits))
        self.copies = CopyEngine(device)
        placer = dit_placer(placement, self.copies)
        with clock.phase("dit"):
            self.dit = load_dit(self.layout.root, device=device, dtype=dtype, placer=placer)
        if self.runtime.compile:
            with clock.phase("compile_setup"):  # wrapping only: graphs compile at the first call
                compile_blocks(self.dit)
        resident = not (placement.streams_dit or placement.streams_kv)
        if self.runtime.cuda_graphs and device.type == "cuda" and resident:
            self.dit.wave_graphs = WaveGraphs()
        self.host = host
        self.placement = placement
        self.load_seconds = {name: round(seconds, 3) for name, seconds in clock.seconds.items()}

    def resident_placement(self, offload: str, precision: str) -> Placement:
        """The placement of the modes before the planner: the whole DiT and its caches on the
        device, helpers resident ("none") or lent ("model"); fp8 runs scaled_mm linears."""
        layers = DiTConfig.from_config_file(self.layout.config_path).num_layers
        return resident_placement(offload, precision, layers, self.runtime.device)

    def graph_counts(self) -> GraphCounts | None:
        """CUDA graphs of the layer pass recorded and replayed so far; None when off."""
        graphs = None if self.dit is None else self.dit.wave_graphs
        return None if graphs is None else graphs.counts()

    def host_to_device_bytes(self) -> int:
        """Bytes the streamed placement has copied host -> device so far (0 when resident)."""
        return 0 if self.copies is None else self.copies.counters.host_to_device

    def _loaded_dit(self) -> CausalS2VDiT:
        if self.dit is None:
            raise RuntimeError("the runner is not loaded: call load(placement) first")
        return self.dit

    def _host(self) -> ComponentHost:
        if self.host is None:
            raise RuntimeError("the runner is not loaded: call load(placement) first")
        return self.host

    def use_offload(self, offload: str) -> None:
        if self.host is not None and self.host.offload != offload:
            self.host.set_offload(offload)

    # --- 2. conditioning ---------------------------------------------------------------

    def condition(
        self, request: RenderRequest, plan: JobPlan, options: SamplerOptions, clock: PhaseClock
    ) -> Conditioning:
        dit, host, geometry = self._loaded_dit(), self._host(), plan.sampling.geometry
        with clock.phase("text"):
            context = dit.embed_text(self._prompt_states(request.prompt).to(dit.device))
        with clock.phase("audio"), host.lend("audio") as audio_encoder:
            audio = audio_frames(audio_encoder, plan.samples_16k, geometry.num_video_frames)
        with clock.phase("reference"):
            ref, motion = self._portrait_latents(request.image_path, geometry, options.pad_mode)
            refreshing = plan.sink_refresh and geometry.num_clips > 1
            size = (geometry.height_px, geometry.width_px)
            pixels = portrait_pixels(request.image_path, *size, options.pad_mode) if refreshing else None
        device, dtype = dit.device, dit.dtype
        return Conditioning(
            context,
            audio.to(device, dtype),
            ref.to(device, dtype),
            motion.to(device, dtype),
            portrait=pixels,
        )

    def _encode_prompt(self, prompt: str) -> torch.Tensor:
        with self._host().lend("text") as text_encoder:
            return prompt_states(text_encoder, prompt)

    def _portrait_latents(self, image_path: Path, geometry: ClipGeometry, pad_mode: str):
        key = (file_sha256(image_path), geometry.height_px, geometry.width_px, pad_mode, self.runtime.dtype)
        if key not in self._portraits:
            pixels = portrait_pixels(image_path, geometry.height_px, geometry.width_px, pad_mode)
            with self._host().lend("vae") as vae:
                latents = (reference_latent(vae, pixels).cpu(), motion_latents(vae, pixels).cpu())
            self._portraits[key] = latents
            while len(self._portraits) > PORTRAIT_CACHE_ENTRIES:
                self._portraits.popitem(last=False)
        self._portraits.move_to_end(key)
        return self._portraits[key]

    # --- 3. frames ---------------------------------------------------------------------

    def frames(
        self,
        cond: Conditioning,
        plan: JobPlan,
        options: SamplerOptions,
        clock: PhaseClock,
        latents_sink: LatentsSink | None = None,
    ) -> Generator[np.ndarray, None, None]:
        """Every frame of the job's clips (48·N minus `drop_first_frames`), generated on demand.
        The VAE stays on the compute device until the caller stops pulling. `latents_sink`
        sees each block's sampled latents before its decode (quality benchmarks, tests)."""
        with self._host().lend("vae") as vae:
            dit = self._loaded_dit()
            distances = sink_distances(plan.sampling.seed, options.sink_distance)
            refresh = None
            if cond.portrait is not None:
                refresh = _sink_refresh(vae, cond, dit.device, self._decoder_latents())
            blocks = sample_blocks(dit, cond, plan.sampling, distances, seeded_noise(plan.sampling), refresh=refresh)
            if latents_sink is not None:
                blocks = tapped(blocks, latents_sink)
            prime = cond.motion_latents[:, -options.decoder_prime_latents :]
            # Decoding beside the sampler pays on CUDA; the frames are the same either way.
            yield from stream_frames(
                blocks,
                vae.stream_decoder(self._decoder_latents()),
                prime,
                clock,
                options.drop_first_frames,
                overlap=True,
            )

    def _decoder_latents(self) -> int:
        return self.placement.decoder_latents if self.placement is not None else CHUNK_LATENTS

    def close(self) -> None:
        self.dit = None
        self.placement = None
        if self.host is not None:
            self.host.clear()
        self.host = None
        self._portraits.clear()
        self._prompt_states.cache_clear()


def helper_offload(placement: Placement) -> str:
    """The `ComponentHost` mode of a placement's helpers: lent ones wait on the CPU."""
    return "model" if placement.helpers == "lend" else "none"


def _sink_refresh(
    vae: Vae, cond: Conditioning, device: torch.device, decoder_latents: int = CHUNK_LATENTS
) -> SinkRefresh:
    """The refresh `sample_blocks` calls after clip 0: the new sink latents from clip 0's output,
    decoded at most `decoder_latents` per call. Its time counts as sampling (it runs inside the
    sampler's generator)."""
    portrait = cond.portrait
    if portrait is None:
        raise RuntimeError("a sink refresh needs the portrait's pixels in the conditioning")

    def refresh(clip_latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ref, motion = refreshed_sink(vae, portrait, clip_latents, decoder_latents)
        return ref.to(device), motion.to(device)

    return refresh


def check_precision(precision: str, runtime: Runtime) -> None:
    """fp8 needs CUDA's fp8 matrix kernels (compute capability 8.9+: Ada, Hopper and later)."""
    if precision == "fp8" and (reason := fp8_compute_problem(runtime.device)):
        raise UsageError(
            f"precision 'fp8': {reason}. Use --weight-format fp8 --precision bf16 (or --weight-format int8 "
            "--precision bf16) to store the DiT's weights in 8 bits and compute in bf16"
        )
