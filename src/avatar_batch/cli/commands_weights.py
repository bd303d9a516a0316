"""`weights manifest | tiny | verify | download`: checkpoint folders in the official layout."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from avatar_batch.cli import err, handled, out, weights_app
from avatar_batch.core.errors import EXIT_OK, EXIT_UNAVAILABLE, UsageError


def _config(name: str):
    from avatar_batch.render.liveavatar.config import MODEL_CONFIGS

    if name not in MODEL_CONFIGS:
        raise UsageError(f"unknown config {name!r}; choose one of {', '.join(MODEL_CONFIGS)}")
    return MODEL_CONFIGS[name]


@weights_app.command()
@handled
def manifest(
    config: str = typer.Option("14b", "--config", help="14b | tiny"),
    as_json: bool = typer.Option(False, "--json", help="Print the full tensor lists as JSON."),
) -> None:
    """The tensors the loader expects in each official file (official key spelling)."""
    from avatar_batch.render.liveavatar.checkpoint import expected_manifest

    data = expected_manifest(_config(config))
    if as_json:
        print(json.dumps(data))
        return
    for part, tensors in data.items():
        out.print(f"{part}: {len(tensors)} tensors")


@weights_app.command()
@handled
def tiny(
    root: Path = typer.Argument(..., help="Folder to write (official layout).", show_default=False),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Write a complete tiny random checkpoint in the official layout (tests, CI, demos)."""
    from avatar_batch.render.liveavatar.checkpoint import write_tiny_checkpoint
    from avatar_batch.render.liveavatar.config import CONFIG_TINY

    write_tiny_checkpoint(root, CONFIG_TINY, seed=seed)
    out.print(f"wrote a tiny checkpoint to {root}")


@weights_app.command()
@handled
def random(
    root: Path = typer.Argument(..., help="Folder to write (official layout).", show_default=False),
    config: str = typer.Option("14b", "--config", help="14b (real sizes, about 47 GB on disk) | tiny"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Write a complete random checkpoint at a config's real sizes (load and memory tests at full size)."""
    from avatar_batch.render.liveavatar.checkpoint.random_weights import write_random_checkpoint

    write_random_checkpoint(root, _config(config), seed=seed)
    out.print(f"wrote a random {config} checkpoint to {root}")


@weights_app.command("verify")
@handled
def verify_weights(root: Path = typer.Argument(..., help="Checkpoint root.", show_default=False)) -> None:
    """Check every file, header, key, shape and dtype without loading tensors."""
    _verify_and_exit(root)


def hub_client():
    """The model hub `download` talks to; a test replaces this with a fake."""
    from avatar_batch.render.liveavatar.checkpoint.download import HuggingFaceHub

    return HuggingFaceHub()


@weights_app.command("download")
@handled
def download_weights(
    root: Path = typer.Argument(..., help="Checkpoint root to fill.", show_default=False),
    revision: list[str] = typer.Option(
        [],
        "--revision",
        help="REPO=REVISION instead of the pinned commit (repeatable), e.g. Quark-Vision/Live-Avatar=main.",
        show_default=False,
    ),
) -> None:
    """Fetch the files the runner needs from the official repositories (resumable), then verify them."""
    from avatar_batch.render.liveavatar.checkpoint.download import RECORD_NAME, download_checkpoint, revisions_with

    record = download_checkpoint(root, hub_client(), revisions_with(revision))
    for repo, fetched in record.items():
        out.print(f"{repo} @ {fetched['commit']} ({fetched['revision']}): {len(fetched['files'])} file(s)/folder(s)")
    out.print(f"recorded in {root / RECORD_NAME}; verifying")
    _verify_and_exit(root)


def _verify_and_exit(root: Path) -> None:
    from avatar_batch.render.liveavatar.checkpoint import verify_checkpoint

    problems = verify_checkpoint(root)
    for problem in problems:
        err.print(f"[red]{problem.render()}[/]", highlight=False)
    if problems:
        raise typer.Exit(EXIT_UNAVAILABLE)
    out.print(f"{root}: checkpoint verified")
    raise typer.Exit(EXIT_OK)
