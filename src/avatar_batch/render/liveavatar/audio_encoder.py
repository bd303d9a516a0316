"""Speech features of Live Avatar: wav2vec2 hidden states at 50 Hz, aligned to
25 fps video frames (docs/model.md §3).

The model half (`AudioEncoder`) runs transformers' Wav2Vec2ForCTC from the
checkpoint's `wav2vec2-large-xlsr-53-english/` folder. The alignment half
(`resample_to_30hz`, `num_clips`, `per_frame_features`) is pure tensor
arithmetic with the official bucketing rules and needs no model.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from avatar_batch.core.errors import InputFileError, Problem, WeightsError
from avatar_batch.core.fsio import atomic_path, remove_tree
from avatar_batch.core.records import MODEL_SAMPLE_RATE_HZ, VIDEO_FPS
from avatar_batch.render.liveavatar.checkpoint.layout import (
    WAV2VEC2_CONFIG_NAME,
    WAV2VEC2_FOLDER,
    WAV2VEC2_PREPROCESSOR_NAME,
    WAV2VEC2_WEIGHTS,
)
from avatar_batch.render.liveavatar.checkpoint.sizes import audio_sizes
from avatar_batch.render.liveavatar.config import AudioSizes

WAV2VEC2_SUBDIR = WAV2VEC2_FOLDER
FEATURE_RATE_HZ = 50  # one wav2vec2 frame per 320 samples at 16 kHz
RESAMPLED_RATE_HZ = 30  # the official pipeline's intermediate "video rate"
DEFAULT_FRAMES_PER_CLIP = 48

# The 7-layer conv feature extractor of wav2vec2 (docs/model.md §3.2): total hop 320 samples.
CONV_KERNELS = (10, 3, 3, 3, 3, 2, 2)
CONV_STRIDES = (5, 2, 2, 2, 2, 2, 2)
POS_CONV_KERNEL = 128
POS_CONV_GROUPS = 16

WEIGHT_FILES = WAV2VEC2_WEIGHTS
# The CTC vocabulary of the English fine-tune; only the processor's loading needs it.
_CTC_TOKENS = ["<pad>", "<s>", "</s>", "<unk>", "|", "'", "-", *[chr(c) for c in range(ord("A"), ord("Z") + 1)]]


# --- alignment (pure) -----------------------------------------------------------------


def num_audio_frames(num_samples: int) -> int:
    """wav2vec2 output length T_a for `num_samples` at 16 kHz: each conv maps
    L to floor((L - kernel) / stride) + 1 (about floor((L - 400) / 320) + 1)."""
    length = num_samples
    for kernel, stride in zip(CONV_KERNELS, CONV_STRIDES):
        length = (length - kernel) // stride + 1
    return max(length, 0)


def num_30hz_frames(num_audio_frames: int) -> int:
    """N30 = floor(T_a * 30 / 50), computed in float64 as the official code does
    (T_a / 50.0 * 30), which is one short of the exact floor for some T_a, e.g. 205 -> 122."""
    return int(num_audio_frames / float(FEATURE_RATE_HZ) * RESAMPLED_RATE_HZ)


def resample_to_30hz(feat: torch.Tensor) -> torch.Tensor:
    """(L, T_a, C) at 50 Hz -> (L, N30, C) fp32, linear with align_corners=True.
    Interpolates in the input's dtype (bf16 on the GPU) before the fp32 cast, as the official code does."""
    layers, _, channels = feat.shape
    n30 = num_30hz_frames(feat.shape[1])
    if n30 == 0:
        return feat.new_zeros((layers, 0, channels), dtype=torch.float32)
    resampled = F.interpolate(feat.transpose(1, 2), size=n30, mode="linear", align_corners=True)  # (L, C, N30)
    return resampled.transpose(1, 2).float()


def num_clips(n30: int, frames_per_clip: int = DEFAULT_FRAMES_PER_CLIP) -> int:
    """floor(N30 / (frames_per_clip * 30/25)) + 1, in integers: there is always a
    last, partly silent clip."""
    return n30 * VIDEO_FPS // (frames_per_clip * RESAMPLED_RATE_HZ) + 1


def frame_indices(num_video_frames: int) -> torch.Tensor:
    """30 Hz index of each 25 fps video frame k: round(1.2 k). 6k/5 has a
    fractional part of 0, .2, .4, .6 or .8, so there are no ties and integer
    rounding, floor((30k + 12) / 25), is exact."""
    k = torch.arange(num_video_frames)
    return (RESAMPLED_RATE_HZ * k + VIDEO_FPS // 2) // VIDEO_FPS


def per_frame_features(feat30: torch.Tensor, num_video_frames: int) -> torch.Tensor:
    """(L, N30, C) -> (L, C, num_video_frames): frame k takes feat30[:, round(1.2k)],
    or zeros past the end of the audio (m = 0: no neighbour window)."""
    layers, n30, channels = feat30.shape
    indices = frame_indices(num_video_frames).to(feat30.device)
    inside = indices < n30
    out = feat30.new_zeros((layers, num_video_frames, channels))
    out[:, inside] = feat30[:, indices[inside]]
    return out.transpose(1, 2)


# --- speech file ----------------------------------------------------------------------


def load_speech_16k(path: Path) -> np.ndarray:
    """A 16 kHz mono PCM WAV (the speech stage's model copy) as float32 in [-1, 1]."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"speech file {path} does not exist")
    try:
        with wave.open(str(path), "rb") as handle:
            channels, width_bytes = handle.getnchannels(), handle.getsampwidth()
            rate_hz, raw = handle.getframerate(), handle.readframes(handle.getnframes())
    except (wave.Error, EOFError) as exc:
        raise InputFileError(f"{path} is not a PCM WAV file ({exc}); convert it to 16-bit PCM") from exc
    if rate_hz != MODEL_SAMPLE_RATE_HZ or channels != 1:
        raise InputFileError(
            f"{path}: {rate_hz} Hz with {channels} channel(s), but the audio encoder needs "
            f"{MODEL_SAMPLE_RATE_HZ} Hz mono; use the speech stage's model WAV"
        )
    if width_bytes == 1:  # unsigned 8-bit
        return (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    if width_bytes in (2, 4):
        dtype = np.dtype("<i2") if width_bytes == 2 else np.dtype("<i4")
        return np.frombuffer(raw, dtype=dtype).astype(np.float32) / float(2 ** (8 * width_bytes - 1))
    raise InputFileError(f"{path}: {8 * width_bytes}-bit samples are not supported; use 16-bit PCM")


# --- the model ------------------------------------------------------------------------


def _wav2vec2_config(sizes: AudioSizes):
    from transformers import Wav2Vec2Config

    return Wav2Vec2Config(
        vocab_size=sizes.vocab_size,
        hidden_size=sizes.hidden_size,
        num_hidden_layers=sizes.num_layers,
        num_attention_heads=sizes.num_heads,
        intermediate_size=sizes.intermediate_size,
        conv_dim=(sizes.conv_dim,) * len(CONV_KERNELS),
        conv_kernel=CONV_KERNELS,
        conv_stride=CONV_STRIDES,
        conv_bias=True,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,  # pre-LN layers and a final encoder LayerNorm, as XLSR-53
        num_conv_pos_embeddings=POS_CONV_KERNEL,
        num_conv_pos_embedding_groups=POS_CONV_GROUPS,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        architectures=["Wav2Vec2ForCTC"],
    )


def _save_processor(folder: Path) -> None:
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor

    vocab_path = folder / "vocab.json"
    vocab_path.write_text(json.dumps({token: i for i, token in enumerate(_CTC_TOKENS)}), encoding="utf-8")
    extractor = Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=MODEL_SAMPLE_RATE_HZ,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=True,
    )
    tokenizer = Wav2Vec2CTCTokenizer(str(vocab_path), unk_token="<unk>", pad_token="<pad>", word_delimiter_token="|")
    # Saved one by one: the released folder has `preprocessor_config.json`, which a
    # processor-level save (transformers >= 5) folds into `processor_config.json`.
    extractor.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))


def write_tiny_wav2vec2(ckpt_dir: Path, sizes: AudioSizes, seed: int) -> None:
    """A random Wav2Vec2ForCTC folder with the real layout: config, safetensors,
    feature-extractor config and CTC vocabulary, loadable offline."""
    from transformers import Wav2Vec2ForCTC

    folder = Path(ckpt_dir) / WAV2VEC2_SUBDIR
    # transformers initialises from the global RNG; fork it so the caller's stream is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Wav2Vec2ForCTC(_wav2vec2_config(sizes))
    if folder.exists():
        remove_tree(folder)
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        model.save_pretrained(str(tmp), safe_serialization=True)
        _save_processor(tmp)


def _folder_problems(folder: Path) -> list[Problem]:
    fix = f"copy {WAV2VEC2_SUBDIR}/ from the Wan2.2-S2V-14B download or write tiny weights"
    if not folder.is_dir():
        return [Problem(file=str(folder), message="folder not found", fix=fix)]
    problems = [
        Problem(file=str(folder / name), message="file not found", fix=fix)
        for name in (WAV2VEC2_CONFIG_NAME, WAV2VEC2_PREPROCESSOR_NAME)
        if not (folder / name).is_file()
    ]
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        problems.append(Problem(file=str(folder), message=f"no weights file ({', '.join(WEIGHT_FILES)})", fix=fix))
    return problems


def _load_feature_extractor(folder: Path):
    from transformers import Wav2Vec2FeatureExtractor

    extractor = Wav2Vec2FeatureExtractor.from_pretrained(str(folder), local_files_only=True)
    path = str(folder / WAV2VEC2_PREPROCESSOR_NAME)
    if extractor.sampling_rate != MODEL_SAMPLE_RATE_HZ or not extractor.do_normalize:
        raise WeightsError(
            f"{path}: the model expects 16 kHz input normalised per utterance",
            [
                Problem(
                    file=path,
                    message="unexpected preprocessing",
                    field="sampling_rate / do_normalize",
                    value=f"{extractor.sampling_rate} / {extractor.do_normalize}",
                    fix="set 16000 / true",
                ),
            ],
        )
    return extractor


class AudioEncoder:
    """16 kHz samples -> all wav2vec2 hidden states, (num_layers + 1, T_a, hidden)."""

    def __init__(self, feature_extractor: Any, model: Any, sizes: AudioSizes, device: torch.device, dtype: torch.dtype):
        self.feature_extractor = feature_extractor  # Wav2Vec2FeatureExtractor: zero mean, unit variance
        self.model = model  # Wav2Vec2ForCTC; only its encoder runs
        self.sizes = sizes  # what the folder's config.json says (`checkpoint/sizes.py`)
        self.device = device
        self.dtype = dtype

    def to(self, device: torch.device | str) -> AudioEncoder:
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    @torch.no_grad()
    def features(self, samples_16k: np.ndarray) -> torch.Tensor:
        """State 0 is the input of layer 1, states 1..L-1 the outputs of layers
        1..L-1, state L the output of layer L after the final LayerNorm (docs/model.md §3.2).
        transformers >= 5 records layer L's output before that LayerNorm, so the
        last state is taken from `last_hidden_state`, which is after it in every version."""
        values = self.feature_extractor(
            np.asarray(samples_16k, dtype=np.float32), sampling_rate=MODEL_SAMPLE_RATE_HZ, return_tensors="pt"
        ).input_values  # (1, num_samples), whole utterance normalised, no attention mask
        out = self.model.wav2vec2(values.to(self.device, self.dtype), output_hidden_states=True)
        expected = self.model.config.num_hidden_layers + 1
        if len(out.hidden_states) != expected:
            raise RuntimeError(f"wav2vec2 returned {len(out.hidden_states)} hidden states, expected {expected}")
        states = (*out.hidden_states[:-1], out.last_hidden_state)
        return torch.cat(states)  # (L + 1, T_a, hidden)


def load_audio_encoder(ckpt_dir: Path, *, device: torch.device | str, dtype: torch.dtype) -> AudioEncoder:
    """Load `<ckpt_dir>/wav2vec2-large-xlsr-53-english/` from local files only.
    Its sizes are read as `weights verify` reads them, so a config either both accept or both refuse."""
    from transformers import Wav2Vec2ForCTC

    folder = Path(ckpt_dir) / WAV2VEC2_SUBDIR
    problems = _folder_problems(folder)
    if problems:
        raise WeightsError(f"wav2vec2 folder {folder} is missing or incomplete", problems)
    sizes = audio_sizes(folder / WAV2VEC2_CONFIG_NAME)
    extractor = _load_feature_extractor(folder)
    # Loaded in its stored dtype (fp32), then cast: works across transformers versions.
    model = Wav2Vec2ForCTC.from_pretrained(str(folder), local_files_only=True)
    model = model.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return AudioEncoder(extractor, model, sizes, torch.device(device), dtype)
