"""`verify_checkpoint(root)`: every problem of a weights folder, without loading tensors.

Checks, each reported as a `Problem` naming the file and key and what to do:
1. every file and folder of the layout is present;
2. config.json parses and names a supported architecture; the umT5 and VAE
   sizes are read off their own files' shapes and the wav2vec2 sizes off its
   config (`sizes.py`), and the networks' widths fit together. With a named
   config ("14b", "tiny") every file is held to that config instead;
3. the shard index and the shards agree (every indexed key in its shard, no
   unindexed tensors), every shard's header is intact and its data complete
   (a truncated download), every key/shape/dtype as the manifest expects;
4. the LoRA covers every target with the right shapes, in an accepted spelling;
5. the T5 and VAE `.pth` files are zip archives whose tensors (unpickled onto
   the meta device, so 11 GB are never read) have the keys and shapes their
   sizes imply;
6. the tokenizer and wav2vec2 folders hold the files their loaders need.
dtype differences are warnings: the loader casts to the run dtype anyway.
"""

from __future__ import annotations

import json
from pathlib import Path

from avatar_batch.core.errors import Problem
from avatar_batch.render.liveavatar.checkpoint.headers import HeaderError, data_problems, read_header, read_pth_tensors
from avatar_batch.render.liveavatar.checkpoint.layout import (
    TOKENIZER_FILES,
    WAV2VEC2_CONFIG_NAME,
    WAV2VEC2_PREPROCESSOR_NAME,
    WAV2VEC2_WEIGHTS,
    CheckpointLayout,
)
from avatar_batch.render.liveavatar.checkpoint.manifest import (
    ManifestEntry,
    dit_entries,
    dit_lora_targets,
    t5_entries,
    vae_entries,
)
from avatar_batch.render.liveavatar.checkpoint.sizes import FIX_DOWNLOAD, FolderSizes, read_dit_config, read_sizes
from avatar_batch.render.liveavatar.config import MODEL_CONFIGS, DiTConfig
from avatar_batch.render.liveavatar.lora import LORA_RANK, check_lora_keys


def verify_checkpoint(root: Path, cfg_name: str | None = None) -> list[Problem]:
    """Every problem of the folder at `root`, held to its own sizes or to the named config."""
    layout = CheckpointLayout.at(root)
    problems = missing_files(layout)
    if cfg_name is None:
        sizes = read_sizes(layout.root)
    else:
        sizes = named_sizes(layout, cfg_name)
    problems += sizes.problems
    if sizes.dit is not None and layout.index_path.is_file():
        problems += dit_problems(layout, dit_entries(sizes.dit))
    if sizes.dit is not None and layout.lora_path.is_file():
        problems += lora_problems(layout.lora_path, sizes.dit)
    if sizes.t5 is not None and layout.t5_path.is_file():
        problems += pth_problems(layout.t5_path, t5_entries(sizes.t5))
    if sizes.vae is not None and layout.vae_path.is_file():
        problems += pth_problems(layout.vae_path, vae_entries(sizes.vae))
    return problems


def named_sizes(layout: CheckpointLayout, cfg_name: str) -> FolderSizes:
    """The sizes of the built-in config `cfg_name`, with a problem where config.json differs."""
    if cfg_name not in MODEL_CONFIGS:
        problem = Problem(
            str(layout.root), f"unknown model config '{cfg_name}'", fix=f"use one of {sorted(MODEL_CONFIGS)}"
        )
        return FolderSizes(None, None, None, None, (problem,))
    named = MODEL_CONFIGS[cfg_name]
    dit, problems = read_dit_config(layout.config_path)
    if dit is not None and dit != named.dit:
        differing = [k for k, v in vars(named.dit).items() if getattr(dit, k) != v]
        problems.append(
            Problem(
                str(layout.config_path),
                f"config.json is not the '{cfg_name}' architecture",
                field=", ".join(differing),
                fix=FIX_DOWNLOAD,
            )
        )
    return FolderSizes(named.dit, named.t5, named.vae, named.audio, tuple(problems))


def missing_files(layout: CheckpointLayout) -> list[Problem]:
    problems = []
    for path in (layout.config_path, layout.index_path, layout.t5_path, layout.vae_path, layout.lora_path):
        if not path.is_file():
            problems.append(Problem(str(path), "file is missing", fix=FIX_DOWNLOAD))
    if not layout.tokenizer_dir.is_dir() or not any((layout.tokenizer_dir / f).is_file() for f in TOKENIZER_FILES):
        problems.append(
            Problem(
                str(layout.tokenizer_dir), f"tokenizer folder lacks all of {list(TOKENIZER_FILES)}", fix=FIX_DOWNLOAD
            )
        )
    folder = layout.wav2vec2_dir
    for name in (WAV2VEC2_CONFIG_NAME, WAV2VEC2_PREPROCESSOR_NAME):
        if not (folder / name).is_file():
            problems.append(Problem(str(folder / name), "wav2vec2 file is missing", fix=FIX_DOWNLOAD))
    if not any((folder / name).is_file() for name in WAV2VEC2_WEIGHTS):
        problems.append(
            Problem(str(folder), f"wav2vec2 weights missing (one of {list(WAV2VEC2_WEIGHTS)})", fix=FIX_DOWNLOAD)
        )
    return problems


def dit_problems(layout: CheckpointLayout, expected: list[ManifestEntry]) -> list[Problem]:
    index_file = str(layout.index_path)
    try:
        weight_map = json.loads(layout.index_path.read_text(encoding="utf-8"))["weight_map"]
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise TypeError("'weight_map' is not a map of tensor names to shard files")
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        return [Problem(index_file, f"shard index is unreadable: {exc}", fix=FIX_DOWNLOAD)]
    found: dict[str, tuple[str, tuple[int, ...], str]] = {}  # key -> (shard file, shape, dtype)
    problems: list[Problem] = []
    for shard in sorted(set(weight_map.values())):
        indexed = {k for k, v in weight_map.items() if v == shard}
        shard_found, shard_problems = shard_contents(layout.shard_path(shard), indexed)
        found.update(shard_found)
        problems += shard_problems
    problems += manifest_problems(index_file, found, expected, set(weight_map))
    return problems


def shard_contents(path: Path, indexed: set[str]) -> tuple[dict, list[Problem]]:
    """Header of one shard vs the keys the index puts in it."""
    if not path.is_file():
        return {}, [Problem(str(path), f"shard is missing ({len(indexed)} indexed tensors)", fix=FIX_DOWNLOAD)]
    try:
        header = read_header(path)
    except HeaderError as exc:
        return {}, [Problem(str(path), f"damaged safetensors header: {exc}", fix=FIX_DOWNLOAD)]
    problems = data_problems(header)
    for key in sorted(indexed - set(header.tensors)):
        problems.append(Problem(str(path), "indexed tensor is not in this shard", entry=key, fix=FIX_DOWNLOAD))
    for key in sorted(set(header.tensors) - indexed):
        problems.append(Problem(str(path), "tensor in the shard is not in the index", entry=key, fix=FIX_DOWNLOAD))
    found = {k: (str(path), t.shape, t.dtype) for k, t in header.tensors.items() if k in indexed}
    return found, problems


def manifest_problems(
    where: str, found: dict[str, tuple[str, tuple[int, ...], str]], expected: list[ManifestEntry], present: set[str]
) -> list[Problem]:
    """Missing/extra keys, wrong shapes (errors) and other dtypes (one warning per file and dtype)."""
    problems = []
    wanted = {k: (tuple(shape), dtype) for k, shape, dtype in expected}
    for key in [k for k in wanted if k not in present]:
        problems.append(Problem(where, "missing tensor", entry=key, fix=FIX_DOWNLOAD))
    for key in sorted(present - set(wanted)):
        problems.append(Problem(where, "unexpected tensor (not in this architecture)", entry=key, fix=FIX_DOWNLOAD))
    other_dtypes: dict[tuple[str, str, str], list[str]] = {}
    for key, (file, shape, dtype) in found.items():
        if key not in wanted:
            continue
        want_shape, want_dtype = wanted[key]
        if tuple(shape) != want_shape:
            problems.append(
                Problem(
                    file,
                    "wrong shape",
                    entry=key,
                    value=str(list(shape)),
                    fix=f"expected {list(want_shape)}; {FIX_DOWNLOAD}",
                )
            )
        elif dtype != want_dtype:
            other_dtypes.setdefault((file, dtype, want_dtype), []).append(key)
    for (file, dtype, want_dtype), keys in other_dtypes.items():
        message = f"{len(keys)} tensors differ in dtype from the release ({want_dtype}); they are cast on load"
        problems.append(Problem(file, message, entry=keys[0], value=dtype, severity="warning"))
    return problems


def lora_problems(path: Path, dit: DiTConfig) -> list[Problem]:
    try:
        header = read_header(path)
    except HeaderError as exc:
        return [Problem(str(path), f"damaged safetensors header: {exc}", fix=FIX_DOWNLOAD)]
    shapes = {k: t.shape for k, t in header.tensors.items()}
    _, coverage = check_lora_keys(path, shapes, dit_lora_targets(dit), rank=LORA_RANK)
    return data_problems(header) + coverage


def pth_problems(path: Path, expected: list[ManifestEntry]) -> list[Problem]:
    try:
        tensors = read_pth_tensors(path)
    except HeaderError as exc:
        return [Problem(str(path), str(exc), fix=exc.fix or FIX_DOWNLOAD)]
    found = {k: (str(path), t.shape, t.dtype) for k, t in tensors.items()}
    return manifest_problems(str(path), found, expected, set(tensors))
