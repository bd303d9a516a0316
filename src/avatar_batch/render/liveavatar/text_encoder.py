"""umT5-XXL text encoder of Live Avatar (docs/model.md §4), run as transformers' UMT5EncoderModel.

The checkpoint is the Wan-native `models_t5_umt5-xxl-enc-bf16.pth`, a bare
state dict without a config. Its sizes are read from the tensor shapes and the
prompt length from the folder's config.json (`checkpoint/sizes.py`, the same
reading `weights verify` does), every tensor is checked against the manifest
those sizes imply, and the keys are renamed into transformers' layout (exact
renames, no reshapes; `tests/fixtures/reference/t5_state_dict.json` holds the
verified map).

Also home of the small checkpoint-file helpers the VAE loader shares:
`load_pth`, `pth_shapes` and `tensor_problems`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from avatar_batch.core.errors import Problem, WeightsError
from avatar_batch.core.fsio import atomic_path
from avatar_batch.render.liveavatar.checkpoint.layout import T5_NAME
from avatar_batch.render.liveavatar.checkpoint.sizes import infer_t5_sizes, text_len_of
from avatar_batch.render.liveavatar.config import T5Sizes
from avatar_batch.render.liveavatar.file_pages import to_device_releasing
from avatar_batch.render.liveavatar.tokenizer import TOKENIZER_SUBDIR, load_tokenizer, tokenize, write_tiny_tokenizer

T5_FILENAME = T5_NAME
T5_DTYPE = "bfloat16"
T5_MAX_DISTANCE = 128  # relative-position buckets saturate beyond this many tokens
T5_EPS = 1e-6

TensorSpec = tuple[str, tuple[int, ...], str]  # (key, shape, dtype name)

# Wan-native block key -> transformers key, for block i ("{i}" filled in).
_BLOCK_KEYS = (
    ("norm1.weight", "layer.0.layer_norm.weight"),
    ("attn.q.weight", "layer.0.SelfAttention.q.weight"),
    ("attn.k.weight", "layer.0.SelfAttention.k.weight"),
    ("attn.v.weight", "layer.0.SelfAttention.v.weight"),
    ("attn.o.weight", "layer.0.SelfAttention.o.weight"),
    ("norm2.weight", "layer.1.layer_norm.weight"),
    ("ffn.gate.0.weight", "layer.1.DenseReluDense.wi_0.weight"),  # GELU-tanh branch
    ("ffn.fc1.weight", "layer.1.DenseReluDense.wi_1.weight"),  # linear branch
    ("ffn.fc2.weight", "layer.1.DenseReluDense.wo.weight"),
    ("pos_embedding.embedding.weight", "layer.0.SelfAttention.relative_attention_bias.weight"),
)


# --- checkpoint-file helpers (shared with vae.py) ------------------------------------


def load_pth(path: Path) -> dict[str, torch.Tensor]:
    """A `.pth` state dict, memory-mapped (an 11 GB file costs no RAM until read)."""
    if not path.is_file():
        fix = "put the official file there or write tiny weights"
        problem = Problem(file=str(path), message="file not found", fix=fix)
        raise WeightsError(f"checkpoint file {path} is missing", [problem])
    try:
        state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except RuntimeError:  # a pre-zip (legacy) torch.save file cannot be memory-mapped; read it whole
        state = _load_unmapped(path)
    except Exception as exc:  # a torn download raises anything from pickle to zip errors
        raise _unreadable(path, exc) from exc
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"checkpoint file {path} is not a plain state dict of tensors")
    return dict(state)


def _load_unmapped(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise _unreadable(path, exc) from exc


def _unreadable(path: Path, exc: Exception) -> WeightsError:
    return WeightsError(f"checkpoint file {path} cannot be read ({exc}); is it truncated? Re-download it")


def pth_shapes(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """Each tensor's shape, what the size readers of `checkpoint/sizes.py` take."""
    return {key: tuple(tensor.shape) for key, tensor in state.items()}


def tensor_problems(
    path: Path, found: Mapping[str, torch.Tensor], expected: Sequence[TensorSpec], sizes: object
) -> list[Problem]:
    """Every missing, unexpected or wrongly shaped tensor of a checkpoint file."""
    want = {key: shape for key, shape, _ in expected}
    fix = f"the file does not match {sizes}; re-download it or write tiny weights again"
    problems = [
        Problem(file=str(path), message=f"tensor missing (shape {list(shape)})", field=key, fix=fix)
        for key, shape in want.items()
        if key not in found
    ]
    for key, tensor in found.items():
        if key not in want:
            problems.append(Problem(file=str(path), message="unexpected tensor", field=key, fix=fix))
        elif tuple(tensor.shape) != want[key]:
            message = f"shape should be {list(want[key])}"
            problems.append(Problem(file=str(path), message=message, field=key, value=str(list(tensor.shape)), fix=fix))
        elif not tensor.is_floating_point():
            problems.append(Problem(file=str(path), message="not a float tensor", field=key, value=str(tensor.dtype)))
    return problems


# --- manifest and key map -----------------------------------------------------------


def expected_t5_tensors(sizes: T5Sizes) -> list[TensorSpec]:
    """Keys, shapes and dtype of the Wan-native `.pth`, in its state-dict order."""
    block_shapes = {
        "norm1.weight": (sizes.dim,),
        "attn.q.weight": (sizes.dim_attn, sizes.dim),
        "attn.k.weight": (sizes.dim_attn, sizes.dim),
        "attn.v.weight": (sizes.dim_attn, sizes.dim),
        "attn.o.weight": (sizes.dim, sizes.dim_attn),
        "norm2.weight": (sizes.dim,),
        "ffn.gate.0.weight": (sizes.dim_ffn, sizes.dim),
        "ffn.fc1.weight": (sizes.dim_ffn, sizes.dim),
        "ffn.fc2.weight": (sizes.dim, sizes.dim_ffn),
        "pos_embedding.embedding.weight": (sizes.num_buckets, sizes.num_heads),
    }
    specs: list[TensorSpec] = [("token_embedding.weight", (sizes.vocab, sizes.dim), T5_DTYPE)]
    for i in range(sizes.num_layers):
        specs += [(f"blocks.{i}.{name}", block_shapes[name], T5_DTYPE) for name, _ in _BLOCK_KEYS]
    specs.append(("norm.weight", (sizes.dim,), T5_DTYPE))
    return specs


def t5_key_map(sizes: T5Sizes) -> dict[str, str]:
    """Wan-native key -> `UMT5EncoderModel` key. `encoder.embed_tokens` is tied
    to `shared` and so is not a separate entry."""
    mapping = {"token_embedding.weight": "shared.weight", "norm.weight": "encoder.final_layer_norm.weight"}
    for i in range(sizes.num_layers):
        for wan, hf in _BLOCK_KEYS:
            mapping[f"blocks.{i}.{wan}"] = f"encoder.block.{i}.{hf}"
    return mapping


# --- tiny weights -------------------------------------------------------------------


def _tiny_tensor(key: str, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Scaled like a trained T5: unit-norm gains, unit-variance embeddings,
    fan-in-scaled projections, so activations stay O(1) through the layers."""
    if key.endswith("norm1.weight") or key.endswith("norm2.weight") or key == "norm.weight":
        return torch.ones(shape)
    if key == "token_embedding.weight":
        return torch.randn(shape, generator=generator)
    if key.endswith("pos_embedding.embedding.weight"):
        return torch.randn(shape, generator=generator) * 0.1
    return torch.randn(shape, generator=generator) * shape[1] ** -0.5


def write_tiny_t5(ckpt_dir: Path, sizes: T5Sizes, seed: int) -> None:
    """Random umT5 weights in the official file format plus a tokenizer folder."""
    ckpt_dir = Path(ckpt_dir)
    generator = torch.Generator().manual_seed(seed)
    state = {
        key: _tiny_tensor(key, shape, generator).to(torch.bfloat16) for key, shape, _ in expected_t5_tensors(sizes)
    }
    with atomic_path(ckpt_dir / T5_FILENAME) as tmp:
        torch.save(state, tmp)
    write_tiny_tokenizer(ckpt_dir / TOKENIZER_SUBDIR, vocab_limit=sizes.vocab, text_len=sizes.text_len)


# --- loading and encoding -----------------------------------------------------------


def _umt5_config(sizes: T5Sizes):
    from transformers import UMT5Config

    return UMT5Config(
        vocab_size=sizes.vocab,
        d_model=sizes.dim,
        d_kv=sizes.dim_attn // sizes.num_heads,
        d_ff=sizes.dim_ffn,
        num_layers=sizes.num_layers,
        num_heads=sizes.num_heads,
        relative_attention_num_buckets=sizes.num_buckets,
        relative_attention_max_distance=T5_MAX_DISTANCE,
        feed_forward_proj="gated-gelu",  # gelu_new = GELU-tanh, the Wan FFN gate
        layer_norm_epsilon=T5_EPS,
        dropout_rate=0.0,
        tie_word_embeddings=False,
        pad_token_id=0,
        eos_token_id=1,
    )


def _build_umt5(state: Mapping[str, torch.Tensor], sizes: T5Sizes, dtype: torch.dtype):
    """UMT5EncoderModel built on the meta device, so no random init is ever
    allocated, then given the checkpoint's tensors (renamed) strictly."""
    from transformers import UMT5EncoderModel

    with torch.device("meta"):
        model = UMT5EncoderModel(_umt5_config(sizes))
    renamed = {hf: state[wan].to(dtype) for wan, hf in t5_key_map(sizes).items()}
    renamed["encoder.embed_tokens.weight"] = renamed["shared.weight"]
    model.load_state_dict(renamed, strict=True, assign=True)
    model.encoder.embed_tokens.weight = model.shared.weight  # assign=True made two Parameters; keep one
    return model.eval().requires_grad_(False)


@dataclass
class TextEncoder:
    """Prompt -> umT5 features, `[L, dim]` per prompt with L counting the EOS."""

    model: Any  # transformers.UMT5EncoderModel
    tokenizer: Any
    sizes: T5Sizes
    device: torch.device

    def to(self, device: torch.device | str) -> TextEncoder:
        """Move the weights (offloading between prompts keeps 11 GB off the GPU)."""
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    @torch.no_grad()
    def encode(self, texts: list[str]) -> list[torch.Tensor]:
        ids, mask = tokenize(self.tokenizer, texts, self.sizes.text_len)  # (B, text_len) each
        ids, mask = ids.to(self.device), mask.to(self.device)
        hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, text_len, dim)
        lengths = mask.sum(dim=1).tolist()
        return [row[:length] for row, length in zip(hidden, lengths)]


def load_text_encoder(
    ckpt_dir: Path,
    *,
    device: torch.device | str,
    dtype: torch.dtype,
    sizes: T5Sizes | None = None,
) -> TextEncoder:
    """Load `<ckpt_dir>/models_t5_umt5-xxl-enc-bf16.pth` and `google/umt5-xxl/`.
    Without `sizes`, they are what the file's shapes and `<ckpt_dir>/config.json` say."""
    ckpt_dir = Path(ckpt_dir)
    tokenizer = load_tokenizer(ckpt_dir / TOKENIZER_SUBDIR)  # cheap checks before the big file
    path = ckpt_dir / T5_FILENAME
    state = load_pth(path)
    if sizes is None:
        sizes = infer_t5_sizes(path, pth_shapes(state), text_len_of(ckpt_dir))
    problems = tensor_problems(path, state, expected_t5_tensors(sizes), sizes)
    if problems:
        raise WeightsError(f"{path} does not hold the umT5 encoder it should ({len(problems)} problems)", problems)
    model = to_device_releasing(_build_umt5(state, sizes, dtype), device)
    return TextEncoder(model=model, tokenizer=tokenizer, sizes=sizes, device=torch.device(device))
