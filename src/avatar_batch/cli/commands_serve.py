"""`serve LIBRARY`: the library's player over HTTP on this machine."""

from __future__ import annotations

from pathlib import Path

import typer

from avatar_batch.cli import app, err, handled, out
from avatar_batch.cli.stopping import stoppable
from avatar_batch.core.errors import EXIT_OK
from avatar_batch.library.serve import DEFAULT_HOST, DEFAULT_PORT, make_server

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _log_line(line: str) -> None:
    err.print(line, highlight=False, markup=False)


@app.command()
@handled
@stoppable
def serve(
    root: Path = typer.Argument(..., help="Library folder (holds index.html).", show_default=False),
    host: str = typer.Option(DEFAULT_HOST, "--host", help="Address to listen on; 127.0.0.1 keeps it on this machine."),
    port: int = typer.Option(DEFAULT_PORT, "--port", help="TCP port; 0 picks a free one."),
    quiet: bool = typer.Option(False, "--quiet", help="Do not log each request."),
) -> None:
    """Serve the library's player, videos and captions over HTTP (seeking works). Ctrl-C stops it."""
    server = make_server(root, host, port, log=None if quiet else _log_line)
    try:  # from here on, Ctrl-C is a clean stop, even before serving has begun
        if host not in LOOPBACK_HOSTS:
            err.print(f"[yellow]listening on {host}: other machines can reach this library[/]")
        out.print(f"serving {root} at {server.url} (Ctrl-C to stop)", highlight=False)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    out.print("stopped", highlight=False)
    raise typer.Exit(EXIT_OK)
