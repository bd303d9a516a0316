"""`load_dit(root, device=…)`: the causal S2V DiT from the official shards, LoRA merged.

1. config.json -> `DiTConfig`; the module tree is built on the `meta` device
   (no memory).
2. The index and every shard header are checked against the tree's
   state_dict (missing/extra keys, shapes, truncated shards) before a single
   tensor is read; all problems are raised together as one `WeightsError`.
3. Each shard's tensors are read by `ShardReader` (several threads, through
   pinned staging buffers; that way of reading measured 1.6x safetensors' own
   path on an H200) onto the target device, cast to the run dtype and put in
   place; the host holds only the staging buffers beyond the page cache.
4. The LoRA is merged (fp32 arithmetic, once); RoPE needs no stored tables.

With a `DiTPlacer` (issue 11), steps 3-4 run first for everything but the
streamed blocks (then quantised as the placement says), and then block by
block for the streamed ones: read to the compute device, merged, quantised,
packed into pinned host memory and bound to a ring slot. The host holds one
copy of the streamed weights, filled straight from the shards.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from avatar_batch.core.errors import Problem, WeightsError
from avatar_batch.render.liveavatar.checkpoint.headers import HeaderError
from avatar_batch.render.liveavatar.checkpoint.layout import CheckpointLayout
from avatar_batch.render.liveavatar.checkpoint.manifest import DIT_DTYPE
from avatar_batch.render.liveavatar.checkpoint.shard_reader import ShardReader
from avatar_batch.render.liveavatar.checkpoint.sizes import FIX_DOWNLOAD, read_dit_config
from avatar_batch.render.liveavatar.checkpoint.verify import dit_problems
from avatar_batch.render.liveavatar.dit import PARITY, CausalS2VDiT, DiTNumerics
from avatar_batch.render.liveavatar.dit.placed import DiTPlacer, block_of_key
from avatar_batch.render.liveavatar.lora import LORA_ALPHA, capped_problems, lora_targets, merge_lora


def load_dit(
    root: Path,
    *,
    device: str | torch.device,
    dtype: torch.dtype = torch.bfloat16,
    lora: bool = True,
    lora_alpha: float = LORA_ALPHA,
    lora_rank: int | None = None,
    numerics: DiTNumerics = PARITY,
    placer: DiTPlacer | None = None,
) -> CausalS2VDiT:
    """The DiT of the checkpoint at `root` on `device` in `dtype`, in eval mode, without gradients.

    The LoRA scale is lora_alpha / r, with r read from the file unless `lora_rank` is given.
    `placer` streams blocks from pinned host memory and sets weight and cache formats."""
    layout = CheckpointLayout.at(root)
    config, problems = read_dit_config(layout.config_path)
    if config is None:
        problems = problems or [Problem(str(layout.config_path), "file is missing", fix=FIX_DOWNLOAD)]
        raise WeightsError(f"no usable DiT config in {layout.dit_dir}", problems)
    with torch.device("meta"):
        model = CausalS2VDiT(config, numerics)
    weight_map = _checked_weight_map(layout, model)
    reader = ShardReader(torch.device(device))
    targets = lora_targets(model)  # before the placer quantises any Linear
    blocks = {k: s for k, s in weight_map.items() if block_of_key(k) is not None}
    trunk = {k: s for k, s in weight_map.items() if k not in blocks} if placer is not None else weight_map
    _stream_weights(model, layout, trunk, reader, dtype)
    if lora:
        include = (lambda m: block_of_key(m + ".") is None) if placer is not None else (lambda m: True)
        merge_lora(model, layout.lora_path, alpha=lora_alpha, rank=lora_rank, include=include, targets=targets)
    if placer is None:
        return model.eval().requires_grad_(False)
    # Block by block, so the device holds one block in the run dtype beyond the stored ones.
    placer.finish_trunk(model)
    for layer, block in enumerate(model.blocks):
        prefix = f"blocks.{layer}."
        _stream_weights(model, layout, {k: s for k, s in blocks.items() if k.startswith(prefix)}, reader, dtype)
        if lora:
            merge_lora(
                model, layout.lora_path, alpha=lora_alpha, rank=lora_rank, include=_under(prefix), targets=targets
            )
        placer.finish_block(layer, block)
    return placer.attach(model.eval().requires_grad_(False))


def _checked_weight_map(layout: CheckpointLayout, model: nn.Module) -> dict[str, str]:
    if not layout.index_path.is_file():
        raise WeightsError(
            f"DiT shard index missing in {layout.dit_dir}",
            [Problem(str(layout.index_path), "file is missing", fix=FIX_DOWNLOAD)],
        )
    expected = [[k, list(v.shape), DIT_DTYPE] for k, v in model.state_dict().items()]
    errors = [p for p in dit_problems(layout, expected) if p.severity == "error"]
    if errors:
        message = f"DiT weights in {layout.dit_dir} do not match config.json ({len(errors)} problems)"
        raise WeightsError(message, capped_problems(errors))
    return json.loads(layout.index_path.read_text(encoding="utf-8"))["weight_map"]


def _stream_weights(
    model: nn.Module, layout: CheckpointLayout, weight_map: dict[str, str], reader: ShardReader, dtype: torch.dtype
) -> None:
    by_shard: dict[str, list[str]] = defaultdict(list)
    for key, shard in weight_map.items():
        by_shard[shard].append(key)
    for shard, keys in sorted(by_shard.items()):
        path = layout.shard_path(shard)
        try:
            tensors = reader.read(path, keys)
        except (HeaderError, OSError, EOFError) as exc:
            raise WeightsError(
                f"DiT shard {path} cannot be read: {exc}", [Problem(str(path), "unreadable shard", fix=FIX_DOWNLOAD)]
            ) from exc
        for key in keys:
            _put(model, key, tensors.pop(key).to(dtype))
    left = [name for name, p in model.named_parameters() if p.is_meta and name in weight_map]
    if left:  # unreachable after the key check; kept so a silent half-load is impossible
        problems = [Problem(str(layout.index_path), "parameter not loaded", entry=k) for k in left]
        raise WeightsError(f"{len(left)} DiT parameters were not loaded", capped_problems(problems))


def _put(model: nn.Module, key: str, tensor: torch.Tensor) -> None:
    """Replace the meta parameter `key` by `tensor` (no copy)."""
    owner_name, _, name = key.rpartition(".")
    owner = model.get_submodule(owner_name) if owner_name else model
    owner._parameters[name] = nn.Parameter(tensor, requires_grad=False)


def _under(prefix: str) -> Callable[[str], bool]:
    return lambda module: (module + ".").startswith(prefix)
