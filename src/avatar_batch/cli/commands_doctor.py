"""`doctor`: is this machine ready to render?"""

from __future__ import annotations

import shutil
from pathlib import Path

import typer
from rich.table import Table

from avatar_batch import batch, speech
from avatar_batch.cli import app, handled, out
from avatar_batch.core.bytecode import heavy_imports_state
from avatar_batch.core.errors import EXIT_OK, EXIT_UNAVAILABLE
from avatar_batch.core.records import CommandVoice
from avatar_batch.render import devices

MIN_FREE_DISK_GIB = 2.0


def _row(table: Table, check: str, ok: bool, detail: str) -> bool:
    table.add_row(check, "[green]ok[/]" if ok else "[red]missing[/]", detail)
    return ok


def _catalogue_voices(table: Table, catalogue: Path, voices: dict) -> bool:
    """One row per (persona, language): is its voice installed? A command
    voice's program was found when the catalogue loaded; show which, and its version."""
    loaded = batch.load(batch.RunOptions(catalogue_path=catalogue, check_voices=False))
    good = True
    for persona in loaded.personas.values():
        for language, voice in sorted(persona.voices.items()):
            label = f"voice {persona.id}/{language}"
            if isinstance(voice, CommandVoice):
                version = speech.command_version(voice.executable)
                _row(table, label, True, f"command {voice.executable} ({version}): {' '.join(voice.argv)}")
                continue
            good &= _row(table, label, speech.voices.knows_voice(voice, voices), voice)
    return good


def _bytecode_row(table: Table) -> None:
    """Heavy packages without .pyc files slow every run's start but break nothing: a warning."""
    slow = [state for state in heavy_imports_state() if state.slow]
    if not slow:
        table.add_row("Python bytecode", "ok", "torch, transformers and diffusers start from .pyc files")
        return
    counts = ", ".join(f"{s.package} {s.without_bytecode}/{s.modules}" for s in slow)
    folders = " ".join(sorted({str(s.folder.parent) for s in slow}))
    table.add_row(
        "Python bytecode",
        "[yellow]slow[/]",
        f"modules without .pyc ({counts}) compile from source in every run (~10 s): "
        f"run `python -m compileall -q {folders}` once",
    )


def _placement_rows(table: Table, weights: Path | None, gpu_memory: float | None) -> None:
    """One row per preset: where Live Avatar would put its weights and caches here (no model loads)."""
    from avatar_batch.cli.commands_render import placement_line
    from avatar_batch.core.records import PRESETS, RenderSettings
    from avatar_batch.core.settings import preset_fields
    from avatar_batch.render.liveavatar import placement_report

    machine = placement_report.assumed_or_detected_machine(gpu_memory)
    model = placement_report.model_config_for(weights)
    for name in PRESETS:
        settings = RenderSettings(renderer="liveavatar", gpu_memory_gib=gpu_memory, **preset_fields(name))
        summary = placement_report.summary(settings, model, machine)
        table.add_row(
            f"placement {name}", "ok" if "error" not in summary else "[yellow]no fit[/]", placement_line(summary)
        )


@app.command()
@handled
def doctor(
    catalogue: Path | None = typer.Argument(None, help="Also check this catalogue's voices.", show_default=False),
    weights: Path | None = typer.Option(None, "--weights", help="Also verify this checkpoint root."),
    library: Path = typer.Option(Path("output"), "--library", help="Where disk space is checked."),
    gpu_memory: float | None = typer.Option(
        None, "--gpu-memory", metavar="GIB", help="Plan the Live Avatar placement for this GPU budget in GiB."
    ),
) -> None:
    """Check ffmpeg, TTS voices per language, disk space, GPUs and (optionally) weights."""
    table = Table("check", "status", "detail")
    good = True
    for program in ("ffmpeg", "ffprobe", "espeak-ng"):
        path = shutil.which(program)
        good &= _row(table, program, path is not None, path or "apt-get install ffmpeg espeak-ng")
    voices = speech.installed_voices()
    good &= _row(table, "TTS voices", bool(voices), f"{len(voices)} espeak-ng voices installed")
    if catalogue is not None:
        good &= _catalogue_voices(table, catalogue, voices)
    probe = library if library.exists() else Path.cwd()
    free_gib = shutil.disk_usage(probe).free / 2**30
    good &= _row(table, "disk", free_gib >= MIN_FREE_DISK_GIB, f"{free_gib:.1f} GiB free at {probe}")
    version = devices.torch_version()
    gpus = devices.accelerators()
    gpu_text = "; ".join(f"{g.name} {g.memory_gib} GiB sm_{g.compute_capability}" for g in gpus)
    table.add_row("torch", "ok" if version else "-", version or "not installed (only the still renderer works)")
    table.add_row("GPU", "ok" if gpus else "-", gpu_text or "none (liveavatar runs on CPU only with the tiny model)")
    if version:
        _bytecode_row(table)
        _placement_rows(table, weights, gpu_memory)
    if weights is not None:
        from avatar_batch.render.liveavatar.checkpoint import verify_checkpoint

        problems = verify_checkpoint(weights)
        detail = (
            "all files and tensors as expected"
            if not problems
            else f"{len(problems)} problem(s): run `avatar-batch weights verify`"
        )
        good &= _row(table, "weights", not problems, f"{weights}: {detail}")
    out.print(table)
    raise typer.Exit(EXIT_OK if good else EXIT_UNAVAILABLE)
