"""The tensors a checkpoint must hold for an architecture, in official spelling.

`expected_manifest(cfg)` lists, for the DiT shards, the LoRA file, the T5
`.pth` and the VAE `.pth`, every `[key, shape, dtype]` in file order. The DiT
and LoRA lists come from our own module tree built on the `meta` device (no
memory), so they cannot drift from the code that loads them; for 14b they
equal the reference manifests dumped from the official classes. The T5 and
VAE lists come from their modules' `expected_*_tensors` (imported when
called: those modules import the layout from this package).
"""

from __future__ import annotations

from functools import lru_cache

import torch

from avatar_batch.render.liveavatar.config import DiTConfig, ModelConfig, T5Sizes, VaeSizes
from avatar_batch.render.liveavatar.dit import CausalS2VDiT
from avatar_batch.render.liveavatar.lora import LORA_RANK, LoraTarget, expected_lora_tensors, lora_targets

DIT_DTYPE = "bfloat16"  # as released and as the official loader casts them
LORA_DTYPE = "bfloat16"

ManifestEntry = list  # [key, [shape...], dtype]


def meta_dit(config: DiTConfig) -> CausalS2VDiT:
    """The DiT with every parameter on the meta device: names and shapes, no storage."""
    with torch.device("meta"):
        return CausalS2VDiT(config)


@lru_cache(maxsize=8)
def _dit_tensors_and_targets(config: DiTConfig) -> tuple[tuple, tuple[LoraTarget, ...]]:
    model = meta_dit(config)
    dit = tuple((k, tuple(v.shape)) for k, v in model.state_dict().items())
    return dit, tuple(lora_targets(model))


def dit_entries(config: DiTConfig) -> list[ManifestEntry]:
    return [[k, list(s), DIT_DTYPE] for k, s in _dit_tensors_and_targets(config)[0]]


def dit_lora_targets(config: DiTConfig) -> list[LoraTarget]:
    """The LoRA target modules of this architecture, in module order."""
    return list(_dit_tensors_and_targets(config)[1])


def lora_entries(config: DiTConfig, rank: int = LORA_RANK) -> list[ManifestEntry]:
    return [[k, list(s), LORA_DTYPE] for k, s in expected_lora_tensors(dit_lora_targets(config), rank)]


def t5_entries(sizes: T5Sizes) -> list[ManifestEntry]:
    from avatar_batch.render.liveavatar.text_encoder import expected_t5_tensors

    return [[k, list(s), d] for k, s, d in expected_t5_tensors(sizes)]


def vae_entries(sizes: VaeSizes) -> list[ManifestEntry]:
    from avatar_batch.render.liveavatar.vae import expected_vae_tensors

    return [[k, list(s), d] for k, s, d in expected_vae_tensors(sizes)]


def expected_manifest(cfg: ModelConfig) -> dict[str, list[ManifestEntry]]:
    """{"dit", "lora", "t5", "vae"} -> [[key, shape, dtype], ...] in official key spelling."""
    return {
        "dit": dit_entries(cfg.dit),
        "lora": lora_entries(cfg.dit),
        "t5": t5_entries(cfg.t5),
        "vae": vae_entries(cfg.vae),
    }
