"""The library's run lock: one writer at a time, enforced by the kernel.

`flock` is released when the holding process dies, however it dies, so a
SIGKILLed run never leaves a stale lock behind; the pid written into the file
only serves the message another run shows. The file is never deleted:
deleting a lock file lets two runs lock two different inodes.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from avatar_batch.core.errors import LockedError
from avatar_batch.core.fsio import cleanup_temp
from avatar_batch.library.layout import LOCK_NAME


@contextmanager
def hold_lock(root: Path) -> Iterator[Path]:
    """Hold `root/.lock` for the duration of the block, or raise LockedError
    at once without touching anything. On entry, remove the `.tmp-*`
    leftovers of a killed run (safe: no one else can be writing now), and on
    the way out, however the block ends, those of this run."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_NAME
    # O_RDWR without O_TRUNC: a run that fails to lock must not wipe the pid.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            raise LockedError(
                f"another run holds {path} (pid {holder}); wait for it to finish or stop it, then run again"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        cleanup_temp(root)
        try:
            yield path
        finally:
            # Still ours while the lock is held: remove what an interrupt cut
            # short wherever it landed (e.g. a staging folder just created).
            cleanup_temp(root)
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read_pid(fd: int) -> str:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return text or "unknown"
