"""The flags that say which run is meant, declared once for every command that asks about one.

`render` renders a run and `plan` predicts it; both must build the same job ids,
so both take exactly these flags (each setting enters the job id, and a flag
missing from one command would make it ask a different question). The worker
flags (`--gpus`, `--workers`, `--executor`, `--ray-address`) never change a job
id; `plan` accepts and ignores them, so a cron line can swap `render` for
`plan`. A command decorated with `run_flags` receives them packed in one
`batch.RunOptions`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from avatar_batch import batch

_KEYWORD = inspect.Parameter.KEYWORD_ONLY

# (parameter, annotation, typer option); the parameter name is the settings
# field unless SETTING_NAMES renames it.
_SETTING_FLAGS: tuple[tuple[str, Any, Any], ...] = (
    ("preset", str | None, typer.Option(None, "--preset", help="quick | standard | high.")),
    ("renderer", str | None, typer.Option(None, "--renderer", help="still | liveavatar.")),
    (
        "size",
        str | None,
        typer.Option(None, "--size", help="Pixel area as W*H, e.g. 704*384 (aspect follows the image)."),
    ),
    ("steps", int | None, typer.Option(None, "--steps", help="Sampling steps, 1..4.")),
    (
        "weights",
        Path | None,
        typer.Option(None, "--weights", help="Checkpoint root holding Wan2.2-S2V-14B/ and LiveAvatar/."),
    ),
    (
        "offload",
        str | None,
        typer.Option(
            None,
            "--offload",
            help="auto (least data movement that fits) | none | model (helpers wait on the CPU) | "
            "blocks (DiT layers and KV caches stream from host memory).",
        ),
    ),
    ("precision", str | None, typer.Option(None, "--precision", help="bf16 | fp8 DiT linears.")),
    (
        "gpu_memory",
        float | None,
        typer.Option(None, "--gpu-memory", help="GPU memory budget in GiB (default: the whole card).", metavar="GIB"),
    ),
    (
        "weight_format",
        str | None,
        typer.Option(
            None,
            "--weight-format",
            help="auto | bf16 | fp8 | int8 | int4 storage of DiT linear weights (auto: as --precision).",
        ),
    ),
    ("kv_format", str | None, typer.Option(None, "--kv-format", help="bf16 | fp8 storage of the KV caches.")),
    ("seed", int | None, typer.Option(None, "--seed", help="Noise seed.")),
    ("num_clip", int | None, typer.Option(None, "--num-clip", help="Cap on 48-frame clips per answer.")),
    (
        "sink_refresh",
        bool | None,
        typer.Option(
            None,
            "--sink-refresh/--no-sink-refresh",
            help="liveavatar: re-seed the sink from the first clip's output (long answers keep their look).",
        ),
    ),
    (
        "compile_cache",
        Path | None,
        typer.Option(
            None,
            "--compile-cache",
            help="liveavatar: folder keeping compiled DiT kernels for later runs, or off "
            "(default: $XDG_CACHE_HOME/avatar-batch/compile).",
            metavar="DIR",
        ),
    ),
    (
        "cuda_graphs",
        bool | None,
        typer.Option(
            None,
            "--cuda-graphs/--no-cuda-graphs",
            help="liveavatar: replay each wave of denoising calls as a CUDA graph once its shape recurs "
            "(whole-GPU placements; the same pixels).",
        ),
    ),
)
SETTING_NAMES = {
    "steps": "sample_steps",
    "weights": "weights_dir",
    "gpu_memory": "gpu_memory_gib",
    "compile_cache": "compile_cache_dir",
}

_RUN_FLAGS: tuple[tuple[str, Any, Any], ...] = (
    (
        "library",
        Path | None,
        typer.Option(None, "--library", help="Library folder (default: the catalogue's `library`)."),
    ),
    ("only", list[str] | None, typer.Option(None, "--only", help="Only this entry id (repeatable).")),
    ("force", bool, typer.Option(False, "--force", help="Re-render even what is up to date.")),
)

# How the run spreads over GPUs and machines; resolved by core.settings.resolve_worker_settings.
_WORKER_FLAGS: tuple[tuple[str, Any, Any], ...] = (
    (
        "gpus",
        str | None,
        typer.Option(None, "--gpus", help="GPUs to use: all (default) or indices like 0,2,3."),
    ),
    (
        "workers",
        int | None,
        typer.Option(None, "--workers", help="Worker processes (default: one per GPU; 1 on a CPU machine)."),
    ),
    ("executor", str | None, typer.Option(None, "--executor", help="local (this machine) | ray (a Ray cluster).")),
    (
        "ray_address",
        str | None,
        typer.Option(None, "--ray-address", help="Ray cluster to join, e.g. auto or ray://head:10001."),
    ),
)

_ALL_FLAGS = (*_SETTING_FLAGS, *_RUN_FLAGS, *_WORKER_FLAGS)
FLAG_NAMES = tuple(name for name, _, _ in _ALL_FLAGS)


def overrides_from(flags: dict[str, Any]) -> dict[str, Any]:
    """The settings the user set, under their settings-field names."""
    return {
        SETTING_NAMES.get(name, name): (str(value) if isinstance(value, Path) else value)
        for name, value in flags.items()
        if value is not None
    }


def options_from(catalogue: Path, flags: dict[str, Any]) -> batch.RunOptions:
    settings = {name: flags[name] for name, _, _ in _SETTING_FLAGS}
    return batch.RunOptions(
        catalogue_path=catalogue,
        library_dir=flags["library"],
        overrides=overrides_from(settings),
        only=tuple(flags["only"] or ()),
        force=flags["force"],
        workers={name: flags[name] for name, _, _ in _WORKER_FLAGS if flags[name] is not None},
    )


def run_flags(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add every run flag to `command`'s signature (as Typer reads it) and call
    it with `catalogue` and `options` instead of the loose flags."""
    signature = inspect.signature(command)
    own = [p for p in signature.parameters.values() if p.name != "options"]
    added = [inspect.Parameter(name, _KEYWORD, default=opt, annotation=kind) for name, kind, opt in _ALL_FLAGS]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:  # Typer passes every parameter by name
        flags = {name: kwargs.pop(name) for name in FLAG_NAMES}
        return command(options=options_from(kwargs["catalogue"], flags), **kwargs)

    wrapper.__signature__ = signature.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {k: v for k, v in command.__annotations__.items() if k != "options"}
    return wrapper
