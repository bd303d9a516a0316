"""The Live Avatar DMD LoRA (`liveavatar.safetensors`, docs/model.md §1.3): read, check, merge, write.

Targets are the `nn.Linear` modules whose name equals, or ends with "." plus,
one of q, k, v, o, ffn.0, ffn.2 (peft's rule): on the 14B DiT the 40 blocks'
self/cross attention and FFN Linears and the 12 audio cross-attentions, 448
modules, 896 tensors. Every one of them must be in the file, with shapes
A (r, in) and B (out, r); anything partial, unknown or misshapen is a
`WeightsError` naming the file and keys, because the official loader's
`strict=False` would silently skip a misspelled file.

Accepted key spellings, per tensor: optional `base_model.model.` prefix, then
`<module>.lora_A.default.weight` or `<module>.lora_A.weight` (same for B).
The merge is `W = dtype(W + (B @ A) * alpha / r)` in fp32, once, before any
quantisation; r is read from the tensors, alpha is 64 unless overridden.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from avatar_batch.core.errors import Problem, WeightsError
from avatar_batch.core.fsio import atomic_path

LORA_RANK = 128
LORA_ALPHA = 64.0
TARGET_MODULES = ("q", "k", "v", "o", "ffn.0", "ffn.2")
PEFT_PREFIX = "base_model.model."
# Written spellings: "peft" is what the released file most likely holds.
SPELLINGS = {
    "peft": ("", ".lora_{ab}.default.weight"),
    "peft_prefixed": (PEFT_PREFIX, ".lora_{ab}.default.weight"),
    "plain": ("", ".lora_{ab}.weight"),
}
_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.default)?\.weight$")
MAX_LISTED_PER_KIND = 5
_SPELLING_FIX = "keys must read <module>.lora_A.default.weight or <module>.lora_A.weight for a q/k/v/o/ffn Linear"


@dataclass(frozen=True)
class LoraTarget:
    module: str
    in_features: int
    out_features: int


def lora_targets(model: nn.Module) -> list[LoraTarget]:
    """The Linear modules the LoRA adapts, in module order."""
    found = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        if any(name == t or name.endswith("." + t) for t in TARGET_MODULES):
            found.append(LoraTarget(name, module.in_features, module.out_features))
    return found


def expected_lora_tensors(targets: Iterable[LoraTarget], rank: int = LORA_RANK) -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) of every tensor, in the `<module>.lora_A.default.weight` spelling."""
    out: list[tuple[str, tuple[int, ...]]] = []
    for t in targets:
        out.append((f"{t.module}.lora_A.default.weight", (rank, t.in_features)))
        out.append((f"{t.module}.lora_B.default.weight", (t.out_features, rank)))
    return out


def parse_lora_key(key: str) -> tuple[str, str] | None:
    """'…q.lora_A.default.weight' -> ('…q', 'A'); None for a key of no accepted spelling."""
    match = _KEY.match(key)
    return (match["module"], match["ab"]) if match else None


def check_lora_keys(
    file: Path, shapes: Mapping[str, tuple[int, ...]], targets: list[LoraTarget], rank: int | None = None
) -> tuple[dict[tuple[str, str], str], list[Problem]]:
    """Map (module, 'A'|'B') -> file key and list every coverage/shape problem.

    `shapes` is the file's key -> shape (from the header; nothing is loaded).
    Without `rank`, the rank most tensors agree on is expected of all."""
    problems: list[Problem] = []
    found: dict[tuple[str, str], str] = {}
    wanted = {t.module for t in targets}
    for key in shapes:
        parsed = parse_lora_key(key)
        if parsed is None or parsed[0] not in wanted:
            problems.append(
                Problem(
                    str(file),
                    "unknown tensor (foreign key spelling or not a LoRA target)",
                    entry=key,
                    fix=_SPELLING_FIX,
                )
            )
        elif parsed in found:
            problems.append(Problem(str(file), f"duplicate of '{found[parsed]}' in another spelling", entry=key))
        else:
            found[parsed] = key
    if rank is None:
        ranks = Counter(shapes[key][0 if ab == "A" else -1] for (_, ab), key in found.items() if shapes[key])
        rank = ranks.most_common(1)[0][0] if ranks else LORA_RANK
    for t in targets:
        for ab, want in (("A", (rank, t.in_features)), ("B", (t.out_features, rank))):
            stored = found.get((t.module, ab))
            if stored is None:
                problems.append(
                    Problem(
                        str(file),
                        "missing LoRA tensor",
                        entry=f"{t.module}.lora_{ab}.default.weight",
                        fix="use the complete liveavatar.safetensors (896 tensors for the 14B DiT)",
                    )
                )
            elif tuple(shapes[stored]) != want:
                problems.append(
                    Problem(
                        str(file),
                        "wrong shape",
                        entry=stored,
                        value=str(list(shapes[stored])),
                        fix=f"expected {list(want)} (rank {rank})",
                    )
                )
    return found, problems


def capped_problems(problems: list[Problem], per_kind: int = MAX_LISTED_PER_KIND) -> list[Problem]:
    """At most `per_kind` problems of each message, then one line counting the rest of that kind."""
    kept: list[Problem] = []
    counts: Counter[str] = Counter()
    for p in problems:
        counts[p.message] += 1
        if counts[p.message] <= per_kind:
            kept.append(p)
    for message, count in counts.items():
        if count > per_kind:
            file = next(p.file for p in problems if p.message == message)
            kept.append(Problem(file, f"... and {count - per_kind} more: {message}"))
    return kept


def lora_error(file: Path, problems: list[Problem]) -> WeightsError:
    return WeightsError(f"LoRA file {file} does not fit the DiT ({len(problems)} problems)", capped_problems(problems))


def read_lora_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """key -> shape from the file's header; no tensor is loaded."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise WeightsError(
            f"LoRA file {path} is missing",
            [Problem(str(path), "file not found", fix="put liveavatar.safetensors under <weights root>/LiveAvatar/")],
        )
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118 - safe_open is not a dict
    except (SafetensorError, OSError) as exc:
        raise WeightsError(
            f"LoRA file {path} cannot be read: {exc}",
            [Problem(str(path), "unreadable safetensors file", fix="download it again")],
        ) from exc


@torch.no_grad()
def merge_lora(
    model: nn.Module,
    path: Path,
    *,
    alpha: float = LORA_ALPHA,
    rank: int | None = None,
    include: Callable[[str], bool] | None = None,
    targets: list[LoraTarget] | None = None,
) -> int:
    """Merge the LoRA at `path` into `model` in place; returns the number of merged modules.

    Every target must be present (else WeightsError, nothing merged). `rank`
    overrides r read from the tensors (which must then have it). `include(module
    name)` merges a part only: a placed load merges each streamed block as it
    is read, and the rest once (the whole file is checked every time). `targets`
    are the model's as `lora_targets` found them before any Linear was quantised
    (a placed load quantises the resident part before the streamed blocks merge)."""
    from safetensors import safe_open

    path = Path(path)
    targets = lora_targets(model) if targets is None else targets
    shapes = read_lora_shapes(path)
    found, problems = check_lora_keys(path, shapes, targets, rank)
    if problems:
        raise lora_error(path, problems)
    modules = dict(model.named_modules())
    chosen = [t for t in targets if include is None or include(t.module)]
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        for t in chosen:
            layer = modules[t.module]
            weight = layer.weight
            a = handle.get_tensor(found[(t.module, "A")]).to(device=weight.device, dtype=torch.float32)
            b = handle.get_tensor(found[(t.module, "B")]).to(device=weight.device, dtype=torch.float32)
            scale = alpha / a.shape[0]
            weight.copy_((weight.float() + (b @ a) * scale).to(weight.dtype))
    return len(chosen)


def random_lora(
    targets: Iterable[LoraTarget], rank: int = LORA_RANK, seed: int = 0, dtype: torch.dtype = torch.bfloat16
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Non-zero random adapters (A, B) per module, small enough that the merge stays a perturbation."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for t in targets:
        a = torch.randn(rank, t.in_features, generator=gen) / t.in_features**0.5
        b = torch.randn(t.out_features, rank, generator=gen) * (0.02 / rank**0.5)
        out[t.module] = (a.to(dtype), b.to(dtype))
    return out


def write_lora_file(
    path: Path, adapters: Mapping[str, tuple[torch.Tensor, torch.Tensor]], spelling: str = "peft"
) -> None:
    """Write adapters {module: (A, B)} as safetensors with one of `SPELLINGS`."""
    from safetensors.torch import save_file

    if spelling not in SPELLINGS:
        raise ValueError(f"unknown LoRA spelling {spelling!r}; choose one of {sorted(SPELLINGS)}")
    prefix, suffix = SPELLINGS[spelling]
    tensors = {}
    for module, (a, b) in adapters.items():
        tensors[f"{prefix}{module}{suffix.format(ab='A')}"] = a.contiguous()
        tensors[f"{prefix}{module}{suffix.format(ab='B')}"] = b.contiguous()
    with atomic_path(Path(path)) as tmp:
        save_file(tensors, str(tmp))
