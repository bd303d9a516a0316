"""SIGINT and SIGTERM stop `render` in every phase with exit 130, no temporary
file left and the manifest whole, even when the parent started it with SIGINT
ignored (a non-interactive shell's `render &`, and any test run started so).

Each run is held at its phase by `interrupt_driver.py`, which creates a file
once there; the signal is sent after that file appears, never after a sleep.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from avatar_batch import batch
from avatar_batch.cli import app
from tests.conftest import with_sigint_ignored

DRIVER = Path(__file__).with_name("interrupt_driver.py")
PHASES = ("plan", "staging", "speech", "render", "mux", "commit")
FAILURE_LIMIT_S = 120.0  # only bounds a broken run; nothing waits this long when all is well


def test_the_harness_passes_an_ignored_sigint_to_the_child():
    """The launch the tests below use really reproduces the inherited disposition."""
    done = subprocess.run(
        with_sigint_ignored([sys.executable, "-c", "import signal; print(signal.getsignal(signal.SIGINT))"]),
        capture_output=True,
        text=True,
        timeout=FAILURE_LIMIT_S,
        check=True,
    )
    assert done.stdout.strip() == str(signal.SIG_IGN)


def test_render_turns_stop_signals_into_exit_130_and_puts_the_handlers_back(project, monkeypatch):
    """In-process: the command handles both signals while it runs, maps the
    interrupt to 130, and leaves this process's handlers as they were."""
    seen = {}

    def interrupted_render(options, progress):
        seen.update({signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)})
        raise KeyboardInterrupt

    monkeypatch.setattr(batch, "render", interrupted_render)
    before = {signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = CliRunner().invoke(app, ["render", str(project.catalogue), "--plain"])
        after = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
    assert result.exit_code == 130, result.output
    assert "interrupted" in result.output
    assert seen == {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.default_int_handler}
    assert after == {signal.SIGINT: signal.SIG_IGN, signal.SIGTERM: signal.SIG_IGN}


def start_held(project, phase: str, ready: Path) -> subprocess.Popen:
    argv = [sys.executable, str(DRIVER), phase, str(ready), "render", str(project.catalogue), "--plain"]
    return subprocess.Popen(
        with_sigint_ignored(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=project.root,
    )


def wait_until_held(process: subprocess.Popen, ready: Path) -> None:
    deadline = time.monotonic() + FAILURE_LIMIT_S
    while not ready.exists():
        if process.poll() is not None:
            raise AssertionError(f"the run ended before its phase was reached:\n{process.communicate()[0].decode()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"phase not reached within {FAILURE_LIMIT_S:.0f} s")
        time.sleep(0.02)


def processes_naming(text: str) -> list[str]:
    """Command lines of live processes that mention `text` (a tool left running)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:  # not a process, or it ended while we looked
            continue
        if text in cmdline and entry.name != str(os.getpid()):
            found.append(cmdline)
    return found


def assert_whole(library: Path) -> None:
    """No temporary file anywhere; the manifest (if any) parses and names whole files only."""
    assert not [p for p in library.rglob("*") if p.name.startswith(".tmp-")]
    manifest = library / "manifest.json"
    if not manifest.exists():
        return
    for item in json.loads(manifest.read_text(encoding="utf-8"))["items"]:
        for key in ("video", "poster", "captions_vtt", "captions_srt"):
            if item.get(key):
                assert (library / item[key]).stat().st_size > 0, item[key]


@pytest.mark.parametrize(
    "phase, stop",
    [
        *[(phase, signal.SIGINT) for phase in PHASES],
        ("speech", signal.SIGTERM),
        ("commit", signal.SIGTERM),
    ],
    ids=[*[f"{phase}-sigint" for phase in PHASES], "speech-sigterm", "commit-sigterm"],
)
def test_a_signal_in_any_phase_exits_130_leaving_nothing_partial(project, tmp_path: Path, phase: str, stop):
    ready = tmp_path / "ready"
    process = start_held(project, phase, ready)
    try:
        wait_until_held(process, ready)
        process.send_signal(stop)
        output, _ = process.communicate(timeout=FAILURE_LIMIT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = output.decode("utf-8", "replace")
    assert process.returncode == 130, text
    assert "interrupted" in text
    assert "Traceback" not in text
    assert_whole(project.library)
    assert processes_naming(f"{tmp_path}/") == []  # the hung TTS engine and ffmpeg were stopped too
