"""SIGINT (Ctrl-C) and SIGTERM stop a long command, whatever its parent set up.

Python turns SIGINT into KeyboardInterrupt only when SIGINT was not ignored
as the interpreter started, and an ignored signal stays ignored across fork
and exec. A non-interactive shell starts `cmd &` with SIGINT ignored (POSIX
asks it to), and so does anything launched from such a job (a test run, a
cron wrapper): `render` then ran to its end after SIGINT and `serve` never
stopped. So the commands that run long install the handler themselves, for
SIGINT and for SIGTERM (what cron and service managers send), and put the
previous handlers back when they return, so that a command run in-process
(a test's CliRunner) leaves the process as it found it. Programs they start
get the default disposition back at exec, as for any handled signal.
"""

from __future__ import annotations

import functools
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Inside the block, SIGINT and SIGTERM raise KeyboardInterrupt in the main thread."""
    previous = [(signum, signal.signal(signum, signal.default_int_handler)) for signum in STOP_SIGNALS]
    try:
        yield
    finally:
        for signum, handler in reversed(previous):
            if handler is not None:  # None: set outside Python, nothing we can put back
                signal.signal(signum, handler)


def stoppable(command: Callable[..., Any]) -> Callable[..., Any]:
    """Run `command` inside `stop_signals_interrupt()`; `handled` maps the interrupt to exit 130."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with stop_signals_interrupt():
            return command(*args, **kwargs)

    return wrapper
