"""Fixtures for library tests: one tiny real MP4 per session, a fresh library per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from avatar_batch.library import Library
from tests.library.library_fixtures import FIXED_TIME, make_tiny_mp4


@pytest.fixture(scope="session")
def tiny_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_mp4(tmp_path_factory.mktemp("media") / "tiny.mp4")


@pytest.fixture
def library(tmp_path: Path) -> Library:
    return Library(tmp_path / "output", clock=lambda: FIXED_TIME)
