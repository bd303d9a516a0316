from __future__ import annotations

import pytest

from avatar_batch.core import fsio, proc
from avatar_batch.core.errors import ToolError, UnavailableError


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "a.json"
    fsio.write_json_atomic(target, {"b": 1, "a": "ü"})
    assert target.read_text(encoding="utf-8") == '{\n  "a": "ü",\n  "b": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_failed_atomic_write_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), fsio.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_cleanup_temp_removes_leftovers_only(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    (tmp_path / ".tmp-abc-video.mp4").write_text("partial")
    (tmp_path / "sub" / ".tmp-job").mkdir(parents=True)
    removed = fsio.cleanup_temp(tmp_path)
    assert len(removed) == 2
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["keep.txt", "sub"]


def test_run_raises_with_stderr_tail():
    with pytest.raises(ToolError, match="boom"):
        proc.run(["python3", "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"])


def test_run_timeout_is_a_tool_error():
    with pytest.raises(ToolError, match="did not finish"):
        proc.run(["sleep", "5"], timeout_s=0.2)


def test_missing_program_is_unavailable():
    with pytest.raises(UnavailableError):
        proc.run(["definitely-not-a-program-xyz"])
    with pytest.raises(UnavailableError, match="apt-get"):
        proc.require_program("definitely-not-a-program-xyz", "apt-get install it")


def test_run_passes_no_shell(tmp_path):
    marker = tmp_path / "pwned"
    done = proc.run(["echo", f"; touch {marker}"])
    assert not marker.exists()
    assert done.stdout.decode().strip() == f"; touch {marker}"
