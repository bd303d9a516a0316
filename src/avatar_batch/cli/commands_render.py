"""`render`, `validate`, `plan` and `doctor`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from avatar_batch import batch
from avatar_batch.cli import app, err, handled, out
from avatar_batch.cli.progress import PlainProgress, RichProgress
from avatar_batch.cli.run_flags import run_flags
from avatar_batch.cli.stopping import stoppable
from avatar_batch.core.errors import EXIT_JOBS_FAILED, EXIT_OK, EXIT_PENDING


def placement_line(summary: dict) -> str:
    """`plan`/`doctor` wording of a placement summary."""
    where = f"{summary['device']}, {summary['size']}"
    if "error" in summary:
        return f"placement ({where}): does not fit: {summary['error']}"
    hint = f"; {summary['hint']}" if "hint" in summary else ""
    return f"placement ({where}): {summary['decision']}{hint}"


CatalogueArg = typer.Argument(..., help="Catalogue YAML file.", show_default=False)


@app.command()
@handled
@stoppable
@run_flags
def render(
    catalogue: Path = CatalogueArg,
    plain: bool = typer.Option(False, "--plain", help="Plain log lines even on a terminal."),
    *,
    options: batch.RunOptions,
) -> None:
    """Render every new or changed answer into the library (safe to run from cron)."""
    if plain or not sys.stderr.isatty():
        report = batch.render(options, PlainProgress())
    else:
        with RichProgress(err) as progress:
            report = batch.render(options, progress)
    done = sum(1 for job in report.jobs if job["status"] in ("completed", "fallback"))
    err.print(
        f"rendered {done}, failed {report.failed}, up to date {report.skipped}, retired {report.retired} "
        f"→ {report.library}"
    )
    raise typer.Exit(EXIT_JOBS_FAILED if report.failed else EXIT_OK)


@app.command()
@handled
def validate(catalogue: Path = CatalogueArg) -> None:
    """Check a catalogue and every file it names; list every problem (exit 65 on errors)."""
    loaded = batch.load(batch.RunOptions(catalogue_path=catalogue))
    for warning in loaded.warnings:
        err.print(f"[yellow]{warning}[/]", highlight=False)
    languages = sorted({lang for entry in loaded.entries for lang in entry.languages})
    out.print(
        f"{catalogue}: OK — {len(loaded.entries)} entries, {len(loaded.personas)} personas, "
        f"languages {', '.join(languages)}"
    )


@app.command()
@handled
@run_flags
def plan(
    catalogue: Path = CatalogueArg,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    *,
    options: batch.RunOptions,
) -> None:
    """Dry run: what would be rendered, skipped and retired. Exit 0 if nothing is pending, 2 if work is."""
    prepared = batch.prepare(options)
    result = batch.make_plan(prepared, options)
    summary: dict[str, Any] = {
        "library": str(prepared.library.root),
        "to_render": [f"{j.entry_id}/{j.language}:{j.job_id}" for j in result.to_render],
        "to_skip": len(result.to_skip),
        "to_retire": [f"{i.entry_id}/{i.language}:{i.job_id}" for i in result.to_retire],
        "estimated_video_s": round(result.estimated_video_s, 1),
        "placement": batch.placement_summary(prepared.settings),
    }
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        for line in summary["to_render"]:
            out.print(f"render  {line}", highlight=False)
        for line in summary["to_retire"]:
            out.print(f"retire  {line}", highlight=False)
        out.print(
            f"{len(result.to_render)} to render (~{summary['estimated_video_s']} s of video), "
            f"{len(result.to_skip)} up to date, {len(result.to_retire)} to retire"
        )
        if summary["placement"] is not None:
            out.print(placement_line(summary["placement"]), highlight=False)
    pending = bool(result.to_render or result.to_retire)
    raise typer.Exit(EXIT_PENDING if pending else EXIT_OK)
