"""Shared fixtures of the runner tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

REFERENCE_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "reference"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: one thread is faster, and on a busy 2-core machine OpenMP
    hand-offs between two threads cost 30x (measured)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def reference_manifest(name: str) -> dict:
    """A checkpoint manifest from ../shared/reference, or skip when it is absent."""
    path = REFERENCE_DIR / name
    if not path.is_file():
        pytest.skip(f"reference manifest {path} not present")
    return json.loads(path.read_text(encoding="utf-8"))
