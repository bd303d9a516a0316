"""The `avatar-batch` command line: parses flags, calls `batch`, prints for
people, and maps typed errors to exit codes (see docs/architecture.md).

The only module that prints. Heavy imports (torch) happen only inside the
commands that need them, so `validate` and `plan` start quickly.
"""

from __future__ import annotations

import errno
import functools
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console

from avatar_batch.core.errors import EXIT_INTERRUPTED, EXIT_JOBS_FAILED, AvatarBatchError, CatalogueError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Render a talking-avatar FAQ video library from a YAML catalogue.",
)
library_app = typer.Typer(no_args_is_help=True, help="Inspect and maintain a rendered library.")
weights_app = typer.Typer(no_args_is_help=True, help="Live Avatar checkpoint folders: verify, manifest, tiny.")
app.add_typer(library_app, name="library")
app.add_typer(weights_app, name="weights")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def handled(command: Callable[..., Any]) -> Callable[..., Any]:
    """Print a typed error for people and exit with its code (130 for an interrupt); never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except CatalogueError as exc:
            for problem in exc.problems:
                colour = "red" if problem.severity == "error" else "yellow"
                err.print(f"[{colour}]{problem.render()}[/]", markup=True, highlight=False)
            count = sum(1 for p in exc.problems if p.severity == "error")
            err.print(f"[red]{count} problem(s) in the catalogue; nothing was rendered.[/]")
            raise typer.Exit(exc.exit_code) from exc
        except AvatarBatchError as exc:
            err.print(f"[red]error:[/] {exc}", highlight=False)
            raise typer.Exit(exc.exit_code) from exc
        except OSError as exc:
            # The machine, not the input: a full disk, a read-only or vanished
            # folder. Every write is atomic, so what is on disk stays whole.
            err.print(f"[red]error:[/] {describe_os_error(exc)}", highlight=False)
            raise typer.Exit(EXIT_JOBS_FAILED) from exc
        except KeyboardInterrupt as exc:
            # Ctrl-C or SIGTERM before `batch` could say more (it raises
            # Interrupted once jobs run): say so, rather than exit 130 in silence.
            err.print("[red]interrupted[/]: every write is atomic, so nothing was left half-written; run it again")
            raise typer.Exit(EXIT_INTERRUPTED) from exc

    return wrapper


def describe_os_error(exc: OSError) -> str:
    """One line for people: the reason, its errno name, the path, what to do next."""
    name = errno.errorcode.get(exc.errno or 0, "")
    text = f"{exc.strerror or exc}" + (f" ({name})" if name else "")
    if exc.filename is not None:
        text += f": {exc.filename}"
    return text + ". Files already in place were kept whole; fix the cause (free space, permissions) and run again"


def main() -> None:
    app()


# Commands register themselves on `app` when their modules are imported.
from avatar_batch.cli import (  # noqa: E402,F401
    commands_doctor,
    commands_init,
    commands_library,
    commands_render,
    commands_serve,
    commands_weights,
)
