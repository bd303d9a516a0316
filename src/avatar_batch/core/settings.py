"""Settings resolve once, here: defaults < catalogue < env AVATAR_BATCH_* < CLI flags.

Nothing else reads the environment. `resolve_run_settings` returns the run-wide
RenderSettings; `settings_for_entry` applies an entry's own preset/size/sink_refresh override;
`resolve_worker_settings` says how the run spreads over GPUs and workers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from avatar_batch.core.errors import UsageError
from avatar_batch.core.records import PRESETS, CatalogueDefaults, Entry, RenderSettings, WorkerSettings

ENV_PREFIX = "AVATAR_BATCH_"
RENDERERS = ("still", "liveavatar")
OFFLOAD_MODES = ("auto", "none", "model", "blocks")
PRECISIONS = ("bf16", "fp8")
WEIGHT_FORMATS = ("auto", "bf16", "fp8", "int8", "int4")
KV_FORMATS = ("bf16", "fp8")
EXECUTORS = ("local", "ray")
SIZE_PATTERN = re.compile(r"^\s*(\d+)\s*[*xX]\s*(\d+)\s*$")
_SWITCH_WORDS = {
    "1": True,
    "true": True,
    "yes": True,
    "on": True,
    "0": False,
    "false": False,
    "no": False,
    "off": False,
}


def switch(raw: str) -> bool:
    """ "1/true/yes/on" or "0/false/no/off" (any case) -> bool; anything else is a ValueError."""
    word = raw.strip().lower()
    if word not in _SWITCH_WORDS:
        raise ValueError(f"{raw!r} is not one of {', '.join(_SWITCH_WORDS)}")
    return _SWITCH_WORDS[word]


# env var name (after the prefix) -> RenderSettings field and parser
_ENV_FIELDS: Mapping[str, tuple[str, Callable[[str], Any]]] = {
    "RENDERER": ("renderer", str),
    "PRESET": ("preset", str),
    "SIZE": ("size", str),
    "SAMPLE_STEPS": ("sample_steps", int),
    "SEED": ("seed", int),
    "NUM_CLIP": ("num_clip", int),
    "OFFLOAD": ("offload", str),
    "PRECISION": ("precision", str),
    "WEIGHTS": ("weights_dir", str),
    "GPU_MEMORY": ("gpu_memory_gib", float),
    "WEIGHT_FORMAT": ("weight_format", str),
    "KV_FORMAT": ("kv_format", str),
    "SINK_REFRESH": ("sink_refresh", switch),
    "COMPILE_CACHE": ("compile_cache_dir", str),
    "CUDA_GRAPHS": ("cuda_graphs", switch),
}
COMPILE_CACHE_OFF = "off"


def parse_size(text: str) -> tuple[int, int]:
    """ "704*384" -> (704, 384). The product is what counts (docs/model.md §6.2)."""
    match = SIZE_PATTERN.match(str(text))
    if not match:
        raise UsageError(f"size {text!r} is not WIDTH*HEIGHT, e.g. '704*384'")
    width, height = int(match.group(1)), int(match.group(2))
    if width < 64 or height < 64:
        raise UsageError(f"size {text!r} is too small: both sides must be at least 64 px")
    return width, height


def preset_fields(preset_name: str) -> dict[str, Any]:
    if preset_name not in PRESETS:
        raise UsageError(f"unknown preset {preset_name!r}; choose one of {', '.join(PRESETS)}")
    preset = PRESETS[preset_name]
    return {
        "preset": preset.name,
        "size": preset.size,
        "sample_steps": preset.sample_steps,
        "frames_per_clip": preset.frames_per_clip,
    }


def env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for suffix, (name, parse) in _ENV_FIELDS.items():
        raw = env.get(ENV_PREFIX + suffix)
        if raw is None or raw == "":
            continue
        try:
            found[name] = parse(raw)
        except ValueError as exc:
            kind = "on/off switch (1/0, true/false, yes/no, on/off)" if parse is switch else parse.__name__
            raise UsageError(f"{ENV_PREFIX}{suffix}={raw!r} is not a valid {kind}") from exc
    return found


def _layer(settings: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    """Apply one layer. A preset brings its size and steps unless the same
    layer names them explicitly."""
    layer = {k: v for k, v in overrides.items() if v is not None}
    if "preset" in layer:
        settings.update(preset_fields(layer["preset"]))
    settings.update(layer)


def resolve_run_settings(
    defaults: CatalogueDefaults,
    env: Mapping[str, str],
    cli: Mapping[str, Any],
) -> RenderSettings:
    settings: dict[str, Any] = dict(RenderSettings().__dict__)
    _layer(settings, {"preset": defaults.preset, "renderer": defaults.renderer, "seed": defaults.seed})
    _layer(settings, env_overrides(env))
    _layer(settings, cli)
    settings["compile_cache_dir"] = compile_cache_dir(settings["compile_cache_dir"], env)
    resolved = RenderSettings(**settings)
    check_settings(resolved)
    return resolved


def compile_cache_dir(chosen: str | None, env: Mapping[str, str]) -> str | None:
    """`--compile-cache DIR|off` or AVATAR_BATCH_COMPILE_CACHE; unset: the user's cache folder,
    $XDG_CACHE_HOME/avatar-batch/compile (else ~/.cache/...; off where neither is known)."""
    if chosen is not None:
        return None if chosen.strip().lower() == COMPILE_CACHE_OFF else chosen
    base = env.get("XDG_CACHE_HOME") or (f"{env['HOME']}/.cache" if env.get("HOME") else None)
    return f"{base}/avatar-batch/compile" if base else None


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UsageError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")


def check_settings(settings: RenderSettings) -> None:
    _check_choice("renderer", settings.renderer, RENDERERS)
    _check_choice("offload mode", settings.offload, OFFLOAD_MODES)
    _check_choice("precision", settings.precision, PRECISIONS)
    _check_choice("weight format", settings.weight_format, WEIGHT_FORMATS)
    _check_choice("kv format", settings.kv_format, KV_FORMATS)
    check_formats(settings)
    if settings.gpu_memory_gib is not None and not settings.gpu_memory_gib > 0:
        raise UsageError(f"--gpu-memory {settings.gpu_memory_gib} GiB must be a positive number of GiB")
    parse_size(settings.size)
    # Only what holds for every renderer; a model's own limits (steps, frames
    # per block) are checked by that renderer when it opens.
    if settings.sample_steps < 1:
        raise UsageError(f"sample_steps {settings.sample_steps} must be at least 1")
    if settings.frames_per_clip < 1:
        raise UsageError(f"frames_per_clip {settings.frames_per_clip} must be at least 1")
    if settings.num_clip is not None and settings.num_clip < 1:
        raise UsageError(f"num_clip {settings.num_clip} must be at least 1")


def check_formats(settings: RenderSettings) -> None:
    """fp8 arithmetic multiplies fp8-stored weights; any other storage under it is a contradiction."""
    if settings.precision == "fp8" and settings.resolved_weight_format != "fp8":
        raise UsageError(
            f"--precision fp8 computes with weights stored in fp8, not {settings.weight_format}: "
            "use --weight-format auto (or fp8), or --precision bf16 to compute in bf16 from "
            f"{settings.weight_format} weights"
        )


def settings_for_entry(run: RenderSettings, entry: Entry, cli_fixed: frozenset[str] = frozenset()) -> RenderSettings:
    """An entry's preset/size/sink_refresh override, unless the user fixed that
    field on the command line (a flag beats the catalogue)."""
    settings = run
    if entry.preset and "preset" not in cli_fixed and "size" not in cli_fixed:
        settings = replace(settings, **preset_fields(entry.preset))
    if entry.size and "size" not in cli_fixed:
        settings = replace(settings, size=entry.size)
    if entry.sink_refresh is not None and "sink_refresh" not in cli_fixed:
        settings = replace(settings, sink_refresh=entry.sink_refresh)
    check_settings(settings)
    return settings


# env var name (after the prefix) -> WorkerSettings flag name; parsed by resolve_worker_settings
_WORKER_ENV: Mapping[str, str] = {
    "EXECUTOR": "executor",
    "GPUS": "gpus",
    "WORKERS": "workers",
    "RAY_ADDRESS": "ray_address",
}


def _pick_gpus(spec: str, visible: tuple[str, ...]) -> tuple[str, ...]:
    """ "all" -> every visible device; "0,2" -> those (indices into the visible list)."""
    if spec.strip().lower() == "all":
        return visible
    picked: list[str] = []
    for part in spec.split(","):
        text = part.strip()
        if not text.isdigit() or int(text) >= len(visible):
            seen = ", ".join(str(i) for i in range(len(visible))) or "none (no GPU is visible)"
            raise UsageError(
                f"--gpus {spec!r}: {text!r} is not a visible GPU index; visible: {seen}. "
                "Fix: pass 'all' or a comma list of those indices"
            )
        if visible[int(text)] not in picked:
            picked.append(visible[int(text)])
    return tuple(picked)


def resolve_worker_settings(
    env: Mapping[str, str], cli: Mapping[str, Any], visible_gpus: tuple[str, ...]
) -> WorkerSettings:
    """`--executor`, `--gpus`, `--workers`, `--ray-address` over AVATAR_BATCH_*.
    `visible_gpus` are the CUDA device ids this machine shows the driver."""
    raw: dict[str, Any] = {
        name: env[ENV_PREFIX + suffix] for suffix, name in _WORKER_ENV.items() if env.get(ENV_PREFIX + suffix)
    }
    raw.update({k: v for k, v in cli.items() if v is not None})
    executor = str(raw.get("executor", "local"))
    if executor not in EXECUTORS:
        raise UsageError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    gpus = _pick_gpus(str(raw.get("gpus", "all")), visible_gpus)
    workers = raw.get("workers")
    if workers is not None:
        try:
            workers = int(workers)
        except ValueError as exc:
            raise UsageError(f"{ENV_PREFIX}WORKERS={workers!r} is not a valid int") from exc
        if workers < 1:
            raise UsageError(f"--workers {workers} must be at least 1")
    if raw.get("ray_address") and executor != "ray":
        raise UsageError("--ray-address names a Ray cluster; add --executor ray to use it")
    if executor == "ray":
        # The cluster's GPUs count under Ray, not this machine's.
        return WorkerSettings("ray", (), workers, raw.get("ray_address"), in_process=False)
    workers = workers or max(1, len(gpus))
    in_process = workers == 1 and gpus == visible_gpus
    return WorkerSettings("local", gpus, workers, None, in_process)
