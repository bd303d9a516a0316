"""Architecture configs of every Live Avatar network, as frozen records.

`DiTConfig` holds exactly the constructor keys of the official causal S2V DiT
(its `config.json` in `Wan2.2-S2V-14B/`), so the real download and a tiny
folder written by `weights tiny` build through the same code. The T5 and VAE
checkpoints are bare `.pth` state dicts with no config: their sizes are read
off the tensor shapes (`checkpoint/sizes.py` reads every size of a folder).

Two named configs exist: `14b` (the released numbers, docs/model.md §2.1, §4, §5) and
`tiny` (same structure, few layers and small widths, for CPU tests and CI).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

DIT_CLASS_NAME = "WanModel_S2V"


@dataclass(frozen=True)
class DiTConfig:
    """Constructor keys of the causal S2V DiT, named as in the official config.json."""

    model_type: str = "s2v"
    patch_size: tuple[int, int, int] = (1, 2, 2)
    text_len: int = 512
    in_dim: int = 16
    dim: int = 5120
    ffn_dim: int = 13824
    freq_dim: int = 256
    text_dim: int = 4096
    out_dim: int = 16
    num_heads: int = 40
    num_layers: int = 40
    window_size: tuple[int, int] = (-1, -1)
    qk_norm: bool = True
    cross_attn_norm: bool = True
    eps: float = 1e-6
    cond_dim: int = 16
    audio_dim: int = 1024
    num_audio_token: int = 4
    enable_adain: bool = True
    adain_mode: str = "attn_norm"
    audio_inject_layers: tuple[int, ...] = (0, 4, 8, 12, 16, 20, 24, 27, 30, 33, 36, 39)
    zero_init: bool = True
    zero_timestep: bool = True
    enable_motioner: bool = False
    add_last_motion: bool = True
    enable_tsm: bool = False
    trainable_token_pos_emb: bool = False
    motion_token_num: int = 1024
    enable_framepack: bool = True
    framepack_drop_mode: str = "padd"
    motion_frames: int = 73

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> DiTConfig:
        """Build from an official-format config.json dict. Keys starting with
        `_` (diffusers metadata) and keys this architecture does not use are ignored."""
        known = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                continue
            kwargs[key] = tuple(value) if isinstance(value, list) else value
        return cls(**kwargs)

    @classmethod
    def from_config_file(cls, path: Path) -> DiTConfig:
        return cls.from_json_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def to_json_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"_class_name": DIT_CLASS_NAME, "_diffusers_version": "0.35.2"}
        for key, value in asdict(self).items():
            data[key] = list(value) if isinstance(value, tuple) else value
        return data


@dataclass(frozen=True)
class T5Sizes:
    """umT5-XXL encoder (Wan-native `.pth`), docs/model.md §4. `text_len` is the DiT
    config's: the official pipeline builds the encoder with it."""

    vocab: int = 256384
    dim: int = 4096
    dim_attn: int = 4096
    dim_ffn: int = 10240
    num_heads: int = 64
    num_layers: int = 24
    num_buckets: int = 32
    text_len: int = 512


@dataclass(frozen=True)
class VaeSizes:
    """Wan2.1 VAE, docs/model.md §5."""

    dim: int = 96
    z_dim: int = 16
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attn_scales: tuple[float, ...] = ()
    temperal_downsample: tuple[bool, ...] = (False, True, True)


@dataclass(frozen=True)
class AudioSizes:
    """wav2vec2-large-xlsr-53-english, docs/model.md §3.2. The DiT consumes all
    `num_layers + 1` hidden states, so a tiny encoder keeps 24 layers."""

    hidden_size: int = 1024
    num_layers: int = 24
    num_heads: int = 16
    intermediate_size: int = 4096
    vocab_size: int = 33
    conv_dim: int = 512  # channels of each of the 7 feature-extractor convs


@dataclass(frozen=True)
class ModelConfig:
    name: str
    dit: DiTConfig = field(default_factory=DiTConfig)
    t5: T5Sizes = field(default_factory=T5Sizes)
    vae: VaeSizes = field(default_factory=VaeSizes)
    audio: AudioSizes = field(default_factory=AudioSizes)


CONFIG_14B = ModelConfig(name="14b")

# Same structure as 14b. Kept under 10 layers (layer ids are matched as names
# in the official code, where 1 would also match 10..19). text_dim keeps the
# real width because the official loader ignores it in config.json; audio_dim
# is honoured there, so it equals the tiny wav2vec2's hidden size.
CONFIG_TINY = ModelConfig(
    name="tiny",
    dit=replace(
        DiTConfig(),
        dim=128,
        ffn_dim=256,
        num_heads=2,
        num_layers=3,
        freq_dim=256,
        audio_inject_layers=(0, 2),
        motion_token_num=1024,
        audio_dim=32,  # = audio.hidden_size below
    ),
    t5=T5Sizes(vocab=512, dim=4096, dim_attn=64, dim_ffn=64, num_heads=2, num_layers=2, num_buckets=32),
    vae=VaeSizes(dim=8, dim_mult=(1, 2, 2, 2)),
    audio=AudioSizes(hidden_size=32, num_layers=24, num_heads=2, intermediate_size=64, vocab_size=33, conv_dim=16),
)

MODEL_CONFIGS: Mapping[str, ModelConfig] = {"14b": CONFIG_14B, "tiny": CONFIG_TINY}
