"""`init DIR`: start a new project (its own library) outside this repository."""

from __future__ import annotations

from pathlib import Path

import typer

from avatar_batch import catalogue as catalogue_stage
from avatar_batch.cli import app, err, handled, out


@app.command()
@handled
def init(
    folder: Path = typer.Argument(..., help="Folder for the new project (created if missing).", show_default=False),
) -> None:
    """Start a project in FOLDER: avatar-batch.toml, an example catalogue, two personas, prompts, a README.

    Never overwrites a file: if any of them exists, nothing is written (exit 73)."""
    written = catalogue_stage.write_project(folder)
    for path in written:
        out.print(f"wrote {path}", highlight=False, markup=False)
    example = folder / catalogue_stage.EXAMPLE_CATALOGUE
    err.print(
        f"next: avatar-batch validate {example}  ·  avatar-batch render {example}  (see {folder / 'README.md'})",
        highlight=False,
        markup=False,
    )
