"""The sizes of every network a weights folder holds, read from the files themselves.

The one answer to "how big is this model?" for `weights verify`, the loaders
and the writers; no side-car file and no release default is consulted:
- the DiT: `config.json` (the official constructor keys);
- umT5: the tensor shapes of `models_t5_umt5-xxl-enc-bf16.pth` (a bare state
  dict) and its prompt length `text_len` from `config.json`, where the
  official pipeline takes it too;
- the VAE: the tensor shapes of `Wan2.1_VAE.pth` (a bare state dict);
- wav2vec2: its Hugging Face `config.json`.
The `.pth` files are unpickled onto the meta device, so an 11 GB file costs
one small read. `checkpoint_sizes(root)` returns the whole `ModelConfig` or
raises every problem; `read_sizes(root)` returns what it could read and why
not the rest (what `verify` reports).

The shape readers invert `expected_t5_tensors` / `expected_vae_tensors` (a
test round-trips them), naming the tensor to re-download when a file cannot
tell its sizes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from avatar_batch.core.errors import Problem, WeightsError
from avatar_batch.render.liveavatar.checkpoint.headers import HeaderError, read_pth_tensors
from avatar_batch.render.liveavatar.checkpoint.layout import CONFIG_NAME, CheckpointLayout
from avatar_batch.render.liveavatar.config import (
    MODEL_CONFIGS,
    AudioSizes,
    DiTConfig,
    ModelConfig,
    T5Sizes,
    VaeSizes,
)
from avatar_batch.render.liveavatar.dit.audio import AUDIO_HIDDEN_STATES
from avatar_batch.render.liveavatar.dit.model import check_supported

FIX_DOWNLOAD = "download the official checkpoint again (or run `weights tiny` for a test folder)"
VAE_LATENT_CHANNELS = 16  # the released latent statistics exist for 16 channels only

Shapes = Mapping[str, tuple[int, ...]]
SizesT = TypeVar("SizesT")


@dataclass(frozen=True)
class FolderSizes:
    """What each component file of a folder holds; None where the file is
    missing (not a problem here: `verify` lists missing files) or cannot tell."""

    dit: DiTConfig | None
    t5: T5Sizes | None
    vae: VaeSizes | None
    audio: AudioSizes | None
    problems: tuple[Problem, ...] = ()  # why a component is None, and parts that do not fit together


def checkpoint_sizes(root: Path) -> ModelConfig:
    """The sizes of every network under `root` (official layout), named after
    the built-in config they equal ("14b", "tiny") or "custom". Raises a
    `WeightsError` with every problem when a file is missing or cannot tell."""
    layout = CheckpointLayout.at(root)
    found = read_sizes(root)
    problems = list(found.problems)
    for part, path in (
        ("dit", layout.config_path),
        ("t5", layout.t5_path),
        ("vae", layout.vae_path),
        ("audio", layout.wav2vec2_config_path),
    ):
        if getattr(found, part) is None and not any(p.file == str(path) for p in problems):
            problems.append(Problem(str(path), "file is missing", fix=FIX_DOWNLOAD))
    if problems or found.dit is None or found.t5 is None or found.vae is None or found.audio is None:
        raise WeightsError(f"cannot read the model sizes in {layout.root}", problems)
    cfg = ModelConfig(name="custom", dit=found.dit, t5=found.t5, vae=found.vae, audio=found.audio)
    named = next((name for name, known in MODEL_CONFIGS.items() if _same_sizes(known, cfg)), "custom")
    return ModelConfig(name=named, dit=cfg.dit, t5=cfg.t5, vae=cfg.vae, audio=cfg.audio)


def _same_sizes(a: ModelConfig, b: ModelConfig) -> bool:
    return (a.dit, a.t5, a.vae, a.audio) == (b.dit, b.t5, b.vae, b.audio)


def read_sizes(root: Path) -> FolderSizes:
    """Every size the folder's files tell, and a `Problem` for each that cannot be read."""
    layout = CheckpointLayout.at(root)
    problems: list[Problem] = []
    dit, dit_problems = read_dit_config(layout.config_path)
    problems += dit_problems
    # Without a usable config.json (reported above, or by verify as missing) the release's prompt length.
    text_len = (dit or DiTConfig()).text_len
    t5 = _read(problems, layout.t5_path, lambda path: t5_sizes(path, text_len))
    vae = _read(problems, layout.vae_path, vae_sizes)
    audio = _read(problems, layout.wav2vec2_config_path, audio_sizes)
    problems += fit_problems(layout, dit, t5, vae, audio)
    return FolderSizes(dit, t5, vae, audio, tuple(problems))


def _read(problems: list[Problem], path: Path, reader: Callable[[Path], SizesT]) -> SizesT | None:
    if not path.is_file():
        return None
    try:
        return reader(path)
    except WeightsError as exc:  # collected: verify lists every problem of every file at once
        problems.extend(exc.problems)
        return None


# --- the DiT ------------------------------------------------------------------------------


def read_dit_config(path: Path) -> tuple[DiTConfig | None, list[Problem]]:
    """config.json as a `DiTConfig` we can build; (None, []) when the file is missing."""
    if not path.is_file():
        return None, []
    try:
        config = DiTConfig.from_json_dict(json.loads(path.read_text(encoding="utf-8")))
        check_supported(config)
    except OSError as exc:
        return None, [Problem(str(path), f"cannot be read: {exc.strerror}", fix="check the file's permissions")]
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, TypeError, ValueError) as exc:
        return None, [Problem(str(path), f"not a usable DiT config: {exc}", fix=FIX_DOWNLOAD)]
    return config, []


def text_len_of(dit_dir: Path) -> int:
    """Prompt length in tokens: `text_len` of the folder's config.json (the
    official T5 is built with it); the release's 512 where there is no config."""
    path = Path(dit_dir) / CONFIG_NAME
    config, problems = read_dit_config(path)
    if problems:
        raise WeightsError(f"{path} cannot give the prompt length", problems)
    return (config or DiTConfig()).text_len


# --- umT5 ---------------------------------------------------------------------------------


def t5_sizes(path: Path, text_len: int) -> T5Sizes:
    """The umT5 sizes of a `.pth`, from its tensors' shapes (the data is not read)."""
    return infer_t5_sizes(path, _pth_shapes(path), text_len)


def infer_t5_sizes(path: Path, shapes: Shapes, text_len: int) -> T5Sizes:
    """Vocabulary and width from the embedding, head count and buckets from
    block 0's relative-position table (one bias per bucket and head), attention
    and FFN widths from block 0, the layer count from the highest block index."""
    embedding = _matrix(path, shapes, "token_embedding.weight", "umT5")
    q = _matrix(path, shapes, "blocks.0.attn.q.weight", "umT5")
    fc1 = _matrix(path, shapes, "blocks.0.ffn.fc1.weight", "umT5")
    num_buckets, num_heads = _matrix(path, shapes, "blocks.0.pos_embedding.embedding.weight", "umT5")
    indices = [int(m.group(1)) for key in shapes if (m := re.match(r"blocks\.(\d+)\.", key))]
    sizes = T5Sizes(
        vocab=embedding[0],
        dim=embedding[1],
        dim_attn=q[0],
        dim_ffn=fc1[0],
        num_heads=num_heads,
        num_layers=max(indices) + 1,
        num_buckets=num_buckets,
        text_len=text_len,
    )
    if sizes.dim_attn % sizes.num_heads:
        message = f"attention width {sizes.dim_attn} is not a multiple of the {sizes.num_heads} heads"
        raise WeightsError(f"{path}: {message}", [Problem(str(path), message, entry="blocks.0.attn.q.weight")])
    return sizes


# --- the VAE --------------------------------------------------------------------------------


def vae_sizes(path: Path) -> VaeSizes:
    """The Wan2.1 VAE sizes of a `.pth`, from its tensors' shapes (the data is not read)."""
    return infer_vae_sizes(path, _pth_shapes(path))


def infer_vae_sizes(path: Path, shapes: Shapes) -> VaeSizes:
    """Base width from the first conv, latent channels from `conv2` (the
    post-quant conv), and per encoder level the residual blocks' widths and
    whether its down-sampler has a time conv. `attn_scales` is always empty:
    diffusers' decoder has no attention in its up-blocks, so a file with such
    blocks fails the tensor check instead."""
    dim = _conv(path, shapes, "encoder.conv1.weight")[0]
    z_dim = _conv(path, shapes, "conv2.weight")[0]
    levels = list(_encoder_levels(shapes))
    res_counts = {len(widths) for widths, _ in levels}
    if len(res_counts) != 1 or 0 in res_counts or dim == 0:
        message = f"encoder levels have {sorted(res_counts)} residual blocks; cannot tell the VAE's sizes"
        raise WeightsError(
            f"{path}: {message}", [Problem(str(path), message, entry="encoder.downsamples", fix=FIX_DOWNLOAD)]
        )
    return VaeSizes(
        dim=dim,
        z_dim=z_dim,
        dim_mult=tuple(widths[-1] // dim for widths, _ in levels),
        num_res_blocks=res_counts.pop(),
        attn_scales=(),
        temperal_downsample=tuple(bool(flag) for _, flag in levels[:-1]),
    )


def _encoder_levels(shapes: Shapes):
    """Walk `encoder.downsamples.j`: per level, the output channels of its
    residual blocks and whether its down-sampler has a time conv (None: last level)."""
    index, widths = 0, []
    while any(key.startswith(f"encoder.downsamples.{index}.") for key in shapes):
        prefix = f"encoder.downsamples.{index}"
        if f"{prefix}.residual.6.weight" in shapes and shapes[f"{prefix}.residual.6.weight"]:
            widths.append(shapes[f"{prefix}.residual.6.weight"][0])
        elif f"{prefix}.resample.1.weight" in shapes:
            yield widths, f"{prefix}.time_conv.weight" in shapes
            widths = []
        index += 1
    yield widths, None


# --- wav2vec2 -------------------------------------------------------------------------------


def audio_sizes(path: Path) -> AudioSizes:
    """The wav2vec2 sizes of its Hugging Face config.json."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        conv_dims = list(data["conv_dim"])
        values = {
            "hidden_size": data["hidden_size"],
            "num_layers": data["num_hidden_layers"],
            "num_heads": data["num_attention_heads"],
            "intermediate_size": data["intermediate_size"],
            "vocab_size": data["vocab_size"],
            "conv_dim": conv_dims[0],
        }
    except OSError as exc:
        problem = Problem(str(path), f"cannot be read: {exc.strerror}", fix="check the file's permissions")
        raise WeightsError(f"{path} cannot be read", [problem]) from exc
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError) as exc:
        problem = Problem(str(path), f"not a usable wav2vec2 config: {exc!r}", fix=FIX_DOWNLOAD)
        raise WeightsError(f"{path} is not a wav2vec2 config", [problem]) from exc
    bad = [k for k, v in values.items() if not isinstance(v, int)]
    if len(set(conv_dims)) != 1:
        bad.append("conv_dim")  # AudioSizes (and our writer) have one width for all 7 convs
    if bad:
        problem = Problem(str(path), "not a usable wav2vec2 config", field=", ".join(bad), fix=FIX_DOWNLOAD)
        raise WeightsError(f"{path} is not a wav2vec2 config", [problem])
    return AudioSizes(**values)


# --- parts that must fit together -----------------------------------------------------------


def fit_problems(
    layout: CheckpointLayout,
    dit: DiTConfig | None,
    t5: T5Sizes | None,
    vae: VaeSizes | None,
    audio: AudioSizes | None,
) -> list[Problem]:
    """Widths one network hands to another; each file alone can be fine."""
    checks = []
    if dit is not None and t5 is not None:
        checks.append((layout.t5_path, "umT5 width", t5.dim, "the DiT's text_dim", dit.text_dim))
    if vae is not None:
        checks.append((layout.vae_path, "VAE latent channels", vae.z_dim, "the latent statistics", VAE_LATENT_CHANNELS))
        if dit is not None:
            checks.append((layout.vae_path, "VAE latent channels", vae.z_dim, "the DiT's in_dim", dit.in_dim))
    if audio is not None:
        path = layout.wav2vec2_config_path
        checks.append(
            (path, "wav2vec2 hidden states", audio.num_layers + 1, "the DiT's audio mix", AUDIO_HIDDEN_STATES)
        )
        if dit is not None:
            checks.append((path, "wav2vec2 hidden_size", audio.hidden_size, "the DiT's audio_dim", dit.audio_dim))
    return [
        Problem(str(path), f"{what} {got} does not match {other} {want}", fix=FIX_DOWNLOAD)
        for path, what, got, other, want in checks
        if got != want
    ]


# --- shape helpers ---------------------------------------------------------------------------


def _pth_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    try:
        tensors = read_pth_tensors(path)
    except HeaderError as exc:
        problem = Problem(str(path), str(exc), fix=exc.fix or FIX_DOWNLOAD)
        raise WeightsError(f"{path} cannot be read ({exc})", [problem]) from exc
    return {name: t.shape for name, t in tensors.items()}


def _matrix(path: Path, shapes: Shapes, key: str, network: str) -> tuple[int, int]:
    shape = shapes.get(key)
    if shape is None or len(shape) != 2:
        message = f"cannot tell the {network} sizes: tensor is {'missing' if shape is None else 'not 2-D'}"
        raise WeightsError(f"{path}: {message} ({key})", [Problem(str(path), message, entry=key, fix=FIX_DOWNLOAD)])
    return shape[0], shape[1]


def _conv(path: Path, shapes: Shapes, key: str) -> tuple[int, ...]:
    shape = shapes.get(key)
    if shape is None or len(shape) != 5:
        message = f"cannot tell the VAE sizes: 3-D conv weight is {'missing' if shape is None else 'not 5-D'}"
        raise WeightsError(f"{path}: {message} ({key})", [Problem(str(path), message, entry=key, fix=FIX_DOWNLOAD)])
    return shape
