"""`write_random_checkpoint(root, cfg)`: a complete official-layout folder with random
weights at the config's real sizes (`weights random --config 14b`).

The real loading path (safetensors streaming, LoRA merge, placement, umT5 and
VAE `.pth` files, the wav2vec2 folder) then runs at full size on a GPU machine
without the 50 GB download. The same writers as `weights tiny` produce every
file (key lists, init scaling, LoRA, umT5, VAE, wav2vec2, tokenizer); what
differs is the DiT, which at 14b is 32.6 GB:

* it is written shard by shard (`DIT_SHARD_BYTES` each), so the host holds one
  shard at a time, never the whole state;
* its values are slices of one seeded pool of unit normals (`POOL_VALUES`),
  each tensor starting at an offset derived from its key, then scaled like the
  tiny writer's init (fan-in scaling, unit gains): copying is ~3x faster than
  drawing 16 billion fresh normals, and activations stay finite in bf16.

The umT5 `.pth` (11.4 GB at 14b) is built once in memory, tensor by tensor in
bf16, and saved storage by storage: one copy plus one tensor in flight.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator
from pathlib import Path

import torch

from avatar_batch.core.fsio import atomic_path, write_json_atomic
from avatar_batch.render.liveavatar.checkpoint.layout import CheckpointLayout, shard_name
from avatar_batch.render.liveavatar.checkpoint.manifest import dit_entries, dit_lora_targets
from avatar_batch.render.liveavatar.checkpoint.tiny import _scale
from avatar_batch.render.liveavatar.config import CONFIG_14B, DiTConfig, ModelConfig
from avatar_batch.render.liveavatar.lora import LORA_RANK, random_lora, write_lora_file

# 16 Mi fp32 unit normals (64 MiB): rows of a 5120-wide weight repeat only every 3,276 rows.
POOL_VALUES = 1 << 24
# About 5 GB per DiT shard: 7 shards at 14b, and the host memory one shard needs.
DIT_SHARD_BYTES = 5 * 10**9
DIT_BYTES_PER_VALUE = 2  # bf16, as released


def noise_pool(seed: int) -> torch.Tensor:
    return torch.randn(POOL_VALUES, generator=torch.Generator().manual_seed(seed))


def pooled_noise(pool: torch.Tensor, key: str, shape: tuple[int, ...]) -> torch.Tensor:
    """Unit-normal values of `shape` (fp32) copied from the pool, starting where the key says."""
    count, size = math.prod(shape), pool.numel()
    out = torch.empty(count)
    at, done = zlib.crc32(key.encode("utf-8")) % size, 0
    while done < count:
        take = min(size - at, count - done)
        out[done : done + take] = pool[at : at + take]
        done, at = done + take, 0
    return out.view(shape)


def shard_groups(entries: list[tuple[str, tuple[int, ...]]], shard_bytes: int) -> list[list[str]]:
    """Keys in file order, cut into consecutive groups of at most `shard_bytes` (a larger tensor alone)."""
    groups: list[list[str]] = [[]]
    filled = 0
    for key, shape in entries:
        size = math.prod(shape) * DIT_BYTES_PER_VALUE
        if groups[-1] and filled + size > shard_bytes:
            groups.append([])
            filled = 0
        groups[-1].append(key)
        filled += size
    return groups


def _shard_tensors(keys: list[str], shapes: dict[str, tuple[int, ...]], pool: torch.Tensor, dim: int) -> Iterator:
    for key in keys:
        shape = shapes[key]
        yield key, _scale(key, list(shape), pooled_noise(pool, key, shape), dim).to(torch.bfloat16).contiguous()


def write_dit_shards_streaming(layout: CheckpointLayout, config: DiTConfig, seed: int, shard_bytes: int) -> int:
    """The DiT shards, index and config.json, one shard in memory at a time. Returns the shard count."""
    from safetensors.torch import save_file

    entries = [(key, tuple(shape)) for key, shape, _ in dit_entries(config)]
    shapes = dict(entries)
    groups = shard_groups(entries, shard_bytes)
    pool = noise_pool(seed)
    weight_map: dict[str, str] = {}
    for index, keys in enumerate(groups, start=1):
        name = shard_name(index, len(groups))
        tensors = dict(_shard_tensors(keys, shapes, pool, config.dim))
        with atomic_path(layout.shard_path(name)) as tmp:
            save_file(tensors, str(tmp), metadata={"format": "pt"})
        del tensors
        weight_map.update({key: name for key in keys})
    total = sum(math.prod(shape) * DIT_BYTES_PER_VALUE for _, shape in entries)
    write_json_atomic(layout.index_path, {"metadata": {"total_size": total}, "weight_map": weight_map})
    write_json_atomic(layout.config_path, config.to_json_dict())
    return len(groups)


def write_random_checkpoint(
    root: Path, cfg: ModelConfig = CONFIG_14B, seed: int = 0, shard_bytes: int = DIT_SHARD_BYTES
) -> CheckpointLayout:
    """Every file of the official layout under `root` at `cfg`'s sizes, random values."""
    from avatar_batch.render.liveavatar.audio_encoder import write_tiny_wav2vec2
    from avatar_batch.render.liveavatar.text_encoder import write_tiny_t5
    from avatar_batch.render.liveavatar.vae import write_tiny_vae

    layout = CheckpointLayout.at(Path(root))
    layout.dit_dir.mkdir(parents=True, exist_ok=True)
    write_dit_shards_streaming(layout, cfg.dit, seed, shard_bytes)
    adapters = random_lora(dit_lora_targets(cfg.dit), LORA_RANK, seed + 1, torch.bfloat16)
    write_lora_file(layout.lora_path, adapters, "peft")
    del adapters
    write_tiny_t5(layout.dit_dir, cfg.t5, seed + 2)
    write_tiny_vae(layout.dit_dir, cfg.vae, seed + 3)
    write_tiny_wav2vec2(layout.dit_dir, cfg.audio, seed + 4)  # every size is read back from the files
    return layout
