"""Shared fixtures of the runner tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
# Key, shape and dtype of every tensor of the released checkpoints; README.md there says how.
REFERENCE_DIR = FIXTURES / "reference"
# Tensors recorded from the official implementation; README.md there says how.
OFFICIAL_FIXTURES = FIXTURES / "official"


class FixtureMissing(AssertionError):
    """A file under tests/fixtures is not in the checkout: the test fails, it is never skipped."""


def fixture_file(path: Path) -> Path:
    """`path` if the checkout has it, else a failure naming it and what to do."""
    if not path.is_file():
        raise FixtureMissing(
            f"test fixture {path} is missing; restore tests/fixtures/ from the repository (git checkout)"
        )
    return path


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: one thread is faster, and on a busy 2-core machine OpenMP
    hand-offs between two threads cost 30x (measured)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def reference_manifest(name: str) -> dict:
    """A checkpoint manifest of tests/fixtures/reference, e.g. "dit_state_dict.json"."""
    return json.loads(fixture_file(REFERENCE_DIR / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def official_fixtures_present() -> None:
    for name in ("README.md", "dit_calls.json", "dit_calls.safetensors", "dit/config.json"):
        fixture_file(OFFICIAL_FIXTURES / name)


# For the parity test modules: fail loudly where the recorded tensors are not checked out.
needs_official_fixtures = pytest.mark.usefixtures("official_fixtures_present")


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
