"""`library list | verify | rebuild | prune`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from avatar_batch.cli import err, handled, library_app, out
from avatar_batch.core.errors import EXIT_DATAERR, EXIT_OK
from avatar_batch.library import Library

LibraryArg = typer.Argument(..., help="Library folder (holds manifest.json).", show_default=False)


@library_app.command("list")
@handled
def list_items(root: Path = LibraryArg, as_json: bool = typer.Option(False, "--json")) -> None:
    """List the library's items."""
    items = sorted(Library(root).items().values(), key=lambda i: (i.entry_id, i.language, i.job_id))
    if as_json:
        out.print_json(json.dumps([item.to_dict() for item in items], ensure_ascii=False))
        return
    table = Table("entry", "lang", "status", "duration", "size", "job", "video")
    for item in items:
        duration = f"{item.duration_s:.1f} s" if item.duration_s else "-"
        size = f"{item.width}x{item.height}" if item.width else "-"
        table.add_row(item.entry_id, item.language, item.status, duration, size, item.job_id, item.video or "")
    out.print(table)


@library_app.command()
@handled
def verify(root: Path = LibraryArg) -> None:
    """Probe every video, poster and caption file; exit 65 if any is missing or damaged."""
    problems = Library(root).verify()
    for problem in problems:
        err.print(f"[red]{problem.render()}[/]", highlight=False)
    if problems:
        err.print(f"{len(problems)} problem(s); the next `render` re-renders the damaged items.")
        raise typer.Exit(EXIT_DATAERR)
    out.print(f"{root}: every item verified")
    raise typer.Exit(EXIT_OK)


@library_app.command()
@handled
def rebuild(root: Path = LibraryArg) -> None:
    """Rewrite library.sqlite and index.html from manifest.json."""
    library = Library(root)
    with library.lock():
        library.rebuild()
    out.print(f"{root}: library.sqlite and index.html rebuilt")


@library_app.command()
@handled
def prune(root: Path = LibraryArg) -> None:
    """Delete the files of retired items and any orphaned folders."""
    library = Library(root)
    with library.lock():
        removed = library.prune()
        library.rebuild()
    for path in removed:
        out.print(f"removed {path}", highlight=False)
    out.print(f"{len(removed)} path(s) removed")
