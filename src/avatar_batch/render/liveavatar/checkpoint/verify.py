"""`verify_checkpoint(root)`: every problem of a weights folder, without loading tensors.

Checks, each reported as a `Problem` naming the file and key and what to do:
1. every file and folder of the layout is present;
2. config.json parses and names a supported architecture (matched against the
   named configs, or the one asked for);
3. the shard index and the shards agree (every indexed key in its shard, no
   unindexed tensors), every shard's header is intact and its data complete
   (a truncated download), every key/shape/dtype as the manifest expects;
4. the LoRA covers every target with the right shapes, in an accepted spelling;
5. the T5 and VAE `.pth` files are zip archives whose tensors (opened with
   `mmap=True`, so 11 GB are never read) have the expected keys and shapes;
6. the tokenizer and wav2vec2 folders hold the files their loaders need.
dtype differences are warnings: the loader casts to the run dtype anyway.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from avatar_batch.core.errors import Problem, WeightsError
from avatar_batch.render.liveavatar.checkpoint.headers import HeaderError, data_problems, read_header
from avatar_batch.render.liveavatar.checkpoint.layout import CheckpointLayout
from avatar_batch.render.liveavatar.checkpoint.manifest import ManifestEntry, dit_lora_targets, expected_manifest
from avatar_batch.render.liveavatar.config import MODEL_CONFIGS, DiTConfig, ModelConfig, T5Sizes, VaeSizes
from avatar_batch.render.liveavatar.dit.model import check_supported
from avatar_batch.render.liveavatar.lora import LORA_RANK, check_lora_keys

FIX_DOWNLOAD = "download the official checkpoint again (or run `weights tiny` for a test folder)"
TOKENIZER_FILES = ("tokenizer.json", "spiece.model", "tokenizer_config.json")
WAV2VEC2_FILES = ("config.json", "preprocessor_config.json")
WAV2VEC2_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def verify_checkpoint(root: Path, cfg_name: str | None = None) -> list[Problem]:
    layout = CheckpointLayout.at(root)
    problems = missing_files(layout)
    cfg, config_problems = resolve_config(layout, cfg_name)
    problems += config_problems
    if cfg is None:
        return problems
    manifest = expected_manifest(cfg)
    if layout.index_path.is_file():
        problems += dit_problems(layout, manifest["dit"])
    if layout.lora_path.is_file():
        problems += lora_problems(layout.lora_path, cfg.dit)
    for path, part in ((layout.t5_path, "t5"), (layout.vae_path, "vae")):
        if path.is_file():
            problems += pth_problems(path, manifest[part])
    return problems


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
    for name in WAV2VEC2_FILES:
        if not (folder / name).is_file():
            problems.append(Problem(str(folder / name), "wav2vec2 file is missing", fix=FIX_DOWNLOAD))
    if not any((folder / name).is_file() for name in WAV2VEC2_WEIGHTS):
        problems.append(
            Problem(str(folder), f"wav2vec2 weights missing (one of {list(WAV2VEC2_WEIGHTS)})", fix=FIX_DOWNLOAD)
        )
    return problems


def read_dit_config(path: Path) -> tuple[DiTConfig | None, list[Problem]]:
    if not path.is_file():
        return None, []  # reported by missing_files
    try:
        config = DiTConfig.from_json_dict(json.loads(path.read_text(encoding="utf-8")))
        check_supported(config)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError) as exc:
        return None, [Problem(str(path), f"not a usable DiT config: {exc}", fix=FIX_DOWNLOAD)]
    return config, []


def resolve_config(layout: CheckpointLayout, cfg_name: str | None) -> tuple[ModelConfig | None, list[Problem]]:
    """The architecture to check against: `cfg_name`, else the named config equal to config.json."""
    dit, problems = read_dit_config(layout.config_path)
    if cfg_name is not None:
        if cfg_name not in MODEL_CONFIGS:
            return None, problems + [
                Problem(
                    str(layout.root), f"unknown model config '{cfg_name}'", fix=f"use one of {sorted(MODEL_CONFIGS)}"
                )
            ]
        named = MODEL_CONFIGS[cfg_name]
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
        return named, problems
    if dit is None:
        return None, problems
    for named in MODEL_CONFIGS.values():
        if named.dit == dit:
            return named, problems
    return custom_config(layout, dit, problems), problems


def custom_config(layout: CheckpointLayout, dit: DiTConfig, problems: list[Problem]) -> ModelConfig:
    """An unnamed DiT: the T5/VAE sizes come from the side-car `weights tiny` writes, else the release's."""
    from avatar_batch.render.liveavatar.text_encoder import sidecar_sizes

    try:
        t5 = sidecar_sizes(layout.dit_dir, "t5", T5Sizes) or T5Sizes()
        vae = sidecar_sizes(layout.dit_dir, "vae", VaeSizes) or VaeSizes()
    except WeightsError as exc:
        problems.extend(exc.problems)
        t5, vae = T5Sizes(), VaeSizes()
    return ModelConfig(name="custom", dit=dit, t5=t5, vae=vae)


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
    import torch

    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:  # is_zipfile would call this "not a zip archive"
        return [Problem(str(path), f"cannot be read: {exc.strerror}", fix="check the file's permissions")]
    if not zipfile.is_zipfile(path):
        return [Problem(str(path), "not a torch zip archive (truncated or wrong file)", fix=FIX_DOWNLOAD)]
    try:
        # mmap: tensors stay on disk; only the pickled structure is read.
        state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile) as exc:
        return [Problem(str(path), f"cannot be opened by torch.load: {exc}", fix=FIX_DOWNLOAD)]
    if not isinstance(state, dict):
        return [Problem(str(path), "does not hold a state dict", value=type(state).__name__, fix=FIX_DOWNLOAD)]
    found = {
        k: (str(path), tuple(v.shape), str(v.dtype).removeprefix("torch."))
        for k, v in state.items()
        if hasattr(v, "shape")
    }
    return manifest_problems(str(path), found, expected, set(state))
