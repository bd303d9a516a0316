"""`write_tiny_checkpoint(root)`: a complete weights folder with random weights, official layout.

Used by `weights tiny`, the CPU tests and CI: same file names, key names,
sharding, index and config.json format as the real download, tiny sizes.
Random values are scaled so activations stay O(1) through the whole network,
and nothing is zero (the release zero-initialises some layers for training;
here every path must show up in the outputs). The T5, VAE, tokenizer and
wav2vec2 files come from their own modules' writers.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from avatar_batch.core.fsio import atomic_path, write_json_atomic
from avatar_batch.render.liveavatar.checkpoint.layout import CheckpointLayout, shard_name
from avatar_batch.render.liveavatar.checkpoint.manifest import dit_entries, dit_lora_targets
from avatar_batch.render.liveavatar.config import CONFIG_TINY, DiTConfig, ModelConfig
from avatar_batch.render.liveavatar.dit import PARITY, CausalS2VDiT, DiTNumerics
from avatar_batch.render.liveavatar.lora import LORA_RANK, random_lora, write_lora_file


def random_dit_state(config: DiTConfig, seed: int = 0, dtype: torch.dtype = torch.bfloat16) -> dict[str, torch.Tensor]:
    """A full random state dict for `config`, keys in file order."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape, _ in dit_entries(config):
        noise = torch.randn(shape, generator=gen)
        state[key] = (_scale(key, shape, noise, config.dim)).to(dtype)
    return state


def random_dit(
    config: DiTConfig = CONFIG_TINY.dit,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    numerics: DiTNumerics = PARITY,
) -> CausalS2VDiT:
    """An in-memory DiT with `random_dit_state` weights (tests, benchmarks), eval mode."""
    with torch.device("meta"):
        model = CausalS2VDiT(config, numerics)
    model.load_state_dict(random_dit_state(config, seed, dtype), assign=True)
    return model.eval().requires_grad_(False)


def _scale(key: str, shape: list[int], noise: torch.Tensor, dim: int) -> torch.Tensor:
    if key.endswith(("norm_q.weight", "norm_k.weight", "norm3.weight")):
        return 1 + 0.1 * noise
    if key == "casual_audio_encoder.weights":
        return 1 + 0.25 * noise.abs()  # positive, so the SiLU-weighted mean is well defined
    if key.endswith("modulation"):
        return noise / dim**0.5  # the official initialisation
    if key.endswith("padding_tokens") or key == "trainable_cond_mask.weight":
        return 0.1 * noise
    if len(shape) == 1:
        return 0.02 * noise  # biases
    return noise / math.prod(shape[1:]) ** 0.5  # fan-in scaling


def write_dit_shards(
    layout: CheckpointLayout, config: DiTConfig, state: dict[str, torch.Tensor], num_shards: int
) -> None:
    """Sharded safetensors of about equal size + index + official-format config.json."""
    from safetensors.torch import save_file

    keys = list(state)
    if not 1 <= num_shards <= len(keys):
        raise ValueError(f"num_shards must be 1..{len(keys)}, got {num_shards}")
    sizes = [state[k].numel() * state[k].element_size() for k in keys]
    total = sum(sizes)
    groups: list[list[str]] = [[] for _ in range(num_shards)]
    running = 0
    for i, (key, size) in enumerate(zip(keys, sizes)):
        # Each shard gets a fair share of bytes, and no shard stays empty.
        slot = min(num_shards - 1, running * num_shards // total, i)
        slot = max(slot, num_shards - (len(keys) - i))
        groups[slot].append(key)
        running += size
    weight_map = {}
    for index, group in enumerate(groups, start=1):
        name = shard_name(index, num_shards)
        with atomic_path(layout.shard_path(name)) as tmp:
            save_file({k: state[k].contiguous() for k in group}, str(tmp), metadata={"format": "pt"})
        weight_map.update({k: name for k in group})
    write_json_atomic(layout.index_path, {"metadata": {"total_size": total}, "weight_map": weight_map})
    write_json_atomic(layout.config_path, config.to_json_dict())


def write_tiny_checkpoint(
    root: Path,
    cfg: ModelConfig = CONFIG_TINY,
    seed: int = 0,
    num_shards: int = 2,
    *,
    dtype: torch.dtype = torch.bfloat16,
    lora_spelling: str = "peft",
    encoders: bool = True,
) -> CheckpointLayout:
    """Write every file of the layout under `root`. `encoders=False` skips T5/VAE/tokenizer/wav2vec2
    (DiT-only tests). Returns the layout. The files alone tell every size
    (`checkpoint_sizes` reads `cfg` back), so no side file is written."""
    if cfg.t5.text_len != cfg.dit.text_len:
        raise ValueError(
            f"T5 text_len {cfg.t5.text_len} != DiT text_len {cfg.dit.text_len}: config.json holds one value"
        )
    layout = CheckpointLayout.at(root)
    write_dit_shards(layout, cfg.dit, random_dit_state(cfg.dit, seed, dtype), num_shards)
    adapters = random_lora(dit_lora_targets(cfg.dit), LORA_RANK, seed + 1, dtype)
    write_lora_file(layout.lora_path, adapters, lora_spelling)
    if encoders:
        from avatar_batch.render.liveavatar.audio_encoder import write_tiny_wav2vec2
        from avatar_batch.render.liveavatar.text_encoder import write_tiny_t5
        from avatar_batch.render.liveavatar.vae import write_tiny_vae

        write_tiny_t5(layout.dit_dir, cfg.t5, seed + 2)
        write_tiny_vae(layout.dit_dir, cfg.vae, seed + 3)
        write_tiny_wav2vec2(layout.dit_dir, cfg.audio, seed + 4)
    return layout
