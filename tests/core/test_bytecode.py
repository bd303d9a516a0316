"""doctor's bytecode check counts the modules a new process would compile from source."""

from __future__ import annotations

import importlib.util
import os
import py_compile
from pathlib import Path

from avatar_batch.core.bytecode import bytecode_state, heavy_imports_state, installed_package_folder


def _package(root: Path, modules: int) -> list[Path]:
    (root / "sub").mkdir(parents=True)
    sources = [root / "__init__.py"] + [root / "sub" / f"m{i}.py" for i in range(modules - 1)]
    for index, source in enumerate(sources):
        source.write_text(f"VALUE = {index}\n", encoding="utf-8")
    return sources


def _compile(source: Path) -> None:
    py_compile.compile(str(source), cfile=importlib.util.cache_from_source(str(source)), doraise=True)


def test_modules_without_bytecode_are_counted_and_compiled_ones_are_not(tmp_path):
    sources = _package(tmp_path / "pkg", modules=10)
    assert bytecode_state("pkg", tmp_path / "pkg").without_bytecode == 10
    for source in sources[:8]:
        _compile(source)
    state = bytecode_state("pkg", tmp_path / "pkg")
    assert (state.modules, state.without_bytecode, state.slow) == (10, 2, True)
    for source in sources[8:]:
        _compile(source)
    assert not bytecode_state("pkg", tmp_path / "pkg").slow


def test_bytecode_older_than_its_source_counts_as_missing(tmp_path):
    sources = _package(tmp_path / "pkg", modules=1)
    _compile(sources[0])
    later = sources[0].stat().st_mtime + 10
    os.utime(sources[0], (later, later))
    assert bytecode_state("pkg", tmp_path / "pkg").without_bytecode == 1


def test_installed_packages_are_found_without_importing_them():
    folder = installed_package_folder("torch")
    assert folder is not None and (folder / "__init__.py").is_file()
    assert installed_package_folder("no_such_package_here") is None
    assert "torch" in [state.package for state in heavy_imports_state()]
