"""The run lock, across real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from avatar_batch.core.errors import LockedError
from avatar_batch.library import Library

TRY_LOCK = """
import sys
from pathlib import Path
from avatar_batch.core.errors import LockedError
from avatar_batch.library import Library
try:
    with Library(Path(sys.argv[1])).lock():
        print("acquired")
except LockedError as error:
    print(error)
    sys.exit(error.exit_code)
"""

HOLD_LOCK = """
import sys
from pathlib import Path
from avatar_batch.library import Library
with Library(Path(sys.argv[1])).lock():
    print("held", flush=True)
    sys.stdin.readline()
"""


def try_in_other_process(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", TRY_LOCK, str(root)], capture_output=True, text=True, timeout=60)


def test_another_process_is_refused_while_the_lock_is_held(library: Library):
    with library.lock() as lock_path:
        assert lock_path.read_text().strip() == str(os.getpid())
        other = try_in_other_process(library.root)
        assert other.returncode == 75
        assert f"another run holds {library.root}/.lock (pid {os.getpid()})" in other.stdout
        assert lock_path.read_text().strip() == str(os.getpid())  # the refused run wiped nothing
    assert try_in_other_process(library.root).stdout.strip() == "acquired"


def test_this_process_is_refused_while_another_holds_it(library: Library):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(library.root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        leftover = library.root / ".tmp-abc-video.mp4"
        leftover.write_bytes(b"belongs to the running job")
        with pytest.raises(LockedError, match=rf"pid {holder.pid}\)"), library.lock():
            pass
        assert leftover.exists()  # a refused run must not clean a live run's files
    finally:
        holder.communicate("done\n", timeout=60)
    with library.lock():
        assert not leftover.exists()


def test_entering_the_lock_removes_leftovers_of_a_killed_run(library: Library):
    library.root.mkdir(parents=True)
    staged = library.staging_dir("a" * 16)
    (staged / "video.mp4").write_bytes(b"half")
    nested = library.root / "videos/hours/en/x" / ".tmp-123-meta.json"
    nested.parent.mkdir(parents=True)
    nested.write_text("{")
    with library.lock():
        assert not staged.exists() and not nested.exists()
        assert (library.root / "videos/hours/en/x").is_dir()


def test_the_lock_is_released_when_its_holder_is_killed(library: Library):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(library.root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait(timeout=60)
    with library.lock():
        pass
