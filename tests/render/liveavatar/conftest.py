"""Shared fixtures of the runner tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

REFERENCE_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "reference"
# Tensors recorded from the official implementation; README.md there says how.
OFFICIAL_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "official"


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


# For the parity test modules: skip them where the recorded tensors are not checked out.
needs_official_fixtures = pytest.mark.skipif(
    not (OFFICIAL_FIXTURES / "README.md").is_file(), reason="official fixtures not present"
)


@pytest.fixture(scope="module")
def recorded() -> tuple[dict, dict]:
    """The recorded DiT calls: (metadata per call, tensors by name)."""
    from safetensors.torch import load_file

    meta = json.loads((OFFICIAL_FIXTURES / "dit_calls.json").read_text())
    return meta, load_file(str(OFFICIAL_FIXTURES / "dit_calls.safetensors"))


@pytest.fixture(scope="module")
def official_model(tmp_path_factory):
    """The fixture's DiT through our loader, from a folder in the download layout (fp32, no LoRA)."""
    from avatar_batch.render.liveavatar.checkpoint import load_dit
    from avatar_batch.render.liveavatar.checkpoint.layout import DIT_FOLDER

    root = tmp_path_factory.mktemp("weights")
    (root / DIT_FOLDER).symlink_to(OFFICIAL_FIXTURES / "dit", target_is_directory=True)
    return load_dit(root, device="cpu", dtype=torch.float32, lora=False)
