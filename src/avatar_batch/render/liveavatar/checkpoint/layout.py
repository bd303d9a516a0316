"""Where every Live Avatar weight file lives under a weights root (docs/model.md §1.2, §1.3).

    ROOT/Wan2.2-S2V-14B/config.json
                        diffusion_pytorch_model.safetensors.index.json
                        diffusion_pytorch_model-0000k-of-0000n.safetensors
                        models_t5_umt5-xxl-enc-bf16.pth
                        google/umt5-xxl/                 (tokenizer)
                        Wan2.1_VAE.pth
                        wav2vec2-large-xlsr-53-english/
    ROOT/LiveAvatar/liveavatar.safetensors

This is the layout of the official downloads, so a folder fetched from the
model hubs works as is. Every official file and folder name is spelled here
and nowhere else; the loaders, `weights verify` and the writers import them.
Pure path arithmetic; nothing is read (`sizes.py` reads what the files hold).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DIT_FOLDER = "Wan2.2-S2V-14B"
LORA_FOLDER = "LiveAvatar"
CONFIG_NAME = "config.json"
INDEX_NAME = "diffusion_pytorch_model.safetensors.index.json"
T5_NAME = "models_t5_umt5-xxl-enc-bf16.pth"
TOKENIZER_FOLDER = "google/umt5-xxl"
VAE_NAME = "Wan2.1_VAE.pth"
WAV2VEC2_FOLDER = "wav2vec2-large-xlsr-53-english"
LORA_NAME = "liveavatar.safetensors"

# A usable tokenizer folder holds at least one of these.
TOKENIZER_FILES = ("tokenizer.json", "spiece.model", "tokenizer_config.json")
# A Hugging Face wav2vec2 folder: both configs, and its weights in one of these forms.
WAV2VEC2_CONFIG_NAME = "config.json"
WAV2VEC2_PREPROCESSOR_NAME = "preprocessor_config.json"
WAV2VEC2_WEIGHTS = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)


def shard_name(index: int, count: int) -> str:
    """1-based shard file name, e.g. diffusion_pytorch_model-00001-of-00004.safetensors."""
    return f"diffusion_pytorch_model-{index:05d}-of-{count:05d}.safetensors"


@dataclass(frozen=True)
class CheckpointLayout:
    root: Path
    dit_dir: Path
    config_path: Path
    index_path: Path
    t5_path: Path
    tokenizer_dir: Path
    vae_path: Path
    wav2vec2_dir: Path
    lora_path: Path

    @classmethod
    def at(cls, root: Path) -> CheckpointLayout:
        root = Path(root)
        dit = root / DIT_FOLDER
        return cls(
            root=root,
            dit_dir=dit,
            config_path=dit / CONFIG_NAME,
            index_path=dit / INDEX_NAME,
            t5_path=dit / T5_NAME,
            tokenizer_dir=dit / TOKENIZER_FOLDER,
            vae_path=dit / VAE_NAME,
            wav2vec2_dir=dit / WAV2VEC2_FOLDER,
            lora_path=root / LORA_FOLDER / LORA_NAME,
        )

    @property
    def wav2vec2_config_path(self) -> Path:
        return self.wav2vec2_dir / WAV2VEC2_CONFIG_NAME

    def shard_path(self, name: str) -> Path:
        return self.dit_dir / name
