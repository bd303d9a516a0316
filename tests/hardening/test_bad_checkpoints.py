"""Checkpoint folders wrong in distinct ways, through `weights verify`: exit 69,
each problem named with its file (and tensor key where there is one), and no
traceback. The good folder comes from `weights tiny`."""

from __future__ import annotations

import json
import re
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from avatar_batch.cli import app

DIT = "Wan2.2-S2V-14B"
SHARD_1 = f"{DIT}/diffusion_pytorch_model-00001-of-00002.safetensors"
SHARD_2 = f"{DIT}/diffusion_pytorch_model-00002-of-00002.safetensors"
INDEX = f"{DIT}/diffusion_pytorch_model.safetensors.index.json"
CONFIG = f"{DIT}/config.json"
LORA = "LiveAvatar/liveavatar.safetensors"
T5 = f"{DIT}/models_t5_umt5-xxl-enc-bf16.pth"
VAE = f"{DIT}/Wan2.1_VAE.pth"
WAV2VEC2 = f"{DIT}/wav2vec2-large-xlsr-53-english"
TOKENIZER = f"{DIT}/google/umt5-xxl"


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("weights") / "tiny"
    result = invoke("weights", "tiny", root)
    if result.exit_code != 0:
        pytest.xfail(f"`weights tiny` does not work yet: {result.output[-500:]}")
    return root


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def replace_header(path: Path, header: bytes) -> None:
    """Swap a safetensors header for `header`, keeping the data after it."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    path.write_bytes(struct.pack("<Q", len(header)) + header + data[8 + length :])


def edit_json(path: Path, change: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def first_tensor(path: Path) -> str:
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return next(k for k in json.loads(data[8 : 8 + length]) if k != "__metadata__")


def grow_first_shape(path: Path) -> str:
    """Double the first dimension of the first tensor in the header only."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    key = first_tensor(path)
    header[key]["shape"][0] *= 2
    replace_header(path, json.dumps(header).encode())
    return key


def a_file(path: Path) -> Path:
    path.write_bytes(b"x")
    return path


def remove(path: Path) -> None:
    shutil.rmtree(path) if path.is_dir() else path.unlink()


# name -> (change the folder, patterns the output must hold); a change that
# returns a Path names the folder to verify, anything else means the root.
CASES: dict[str, tuple[Callable[[Path], Path | None], tuple[str, ...]]] = {
    "root-missing": (lambda r: r / "nowhere", (r"nowhere/Wan2\.2-S2V-14B/config\.json", "missing")),
    "root-empty": (lambda r: [remove(p) for p in list(r.iterdir())], (r"config\.json", "missing")),
    "root-is-a-file": (lambda r: a_file(r / "file.bin"), ("missing",)),
    "lora-missing": (lambda r: remove(r / LORA), (r"liveavatar\.safetensors", "missing")),
    "shard-missing": (lambda r: remove(r / SHARD_2), (r"00002-of-00002\.safetensors", "shard is missing")),
    "shard-truncated": (lambda r: truncate(r / SHARD_1), (r"00001-of-00002\.safetensors", "truncated")),
    "shard-header-length-garbage": (
        lambda r: (r / SHARD_1).write_bytes(b"\xff" * 8 + (r / SHARD_1).read_bytes()[8:]),
        (r"00001-of-00002\.safetensors", "damaged safetensors header"),
    ),
    "shard-header-not-json": (
        lambda r: replace_header(r / SHARD_1, b"{not json" + b" " * 40),
        (r"00001-of-00002\.safetensors", "not JSON"),
    ),
    "shard-header-a-list": (
        lambda r: replace_header(r / SHARD_1, b"[1, 2, 3]"),
        (r"00001-of-00002\.safetensors", "damaged safetensors header"),
    ),
    "shard-only-four-bytes": (
        lambda r: (r / SHARD_1).write_bytes(b"abcd"),
        (r"00001-of-00002\.safetensors", "no header length"),
    ),
    "shard-wrong-shape": (lambda r: grow_first_shape(r / SHARD_1), (r"00001-of-00002", "wrong shape", r"entry '")),
    "shard-dangling-symlink": (
        lambda r: remove(r / SHARD_2) or (r / SHARD_2).symlink_to(r / "gone.safetensors"),
        (r"00002-of-00002\.safetensors", "shard is missing"),
    ),
    "index-not-json": (lambda r: (r / INDEX).write_text("{{{"), (r"index\.json", "unreadable")),
    "index-without-weight-map": (lambda r: (r / INDEX).write_text("{}"), (r"index\.json", "unreadable")),
    "index-weight-map-a-list": (
        lambda r: (r / INDEX).write_text('{"weight_map": ["a", "b"]}'),
        (r"index\.json", "unreadable"),
    ),
    "index-drops-a-key": (
        lambda r: edit_json(r / INDEX, lambda d: d["weight_map"].pop(first_tensor(r / SHARD_1))),
        (r"00001-of-00002\.safetensors", "not in the index"),
    ),
    "config-not-json": (lambda r: (r / CONFIG).write_text("dim: 128"), (r"config\.json", "not a usable DiT config")),
    "config-other-architecture": (
        lambda r: edit_json(r / CONFIG, lambda d: d.__setitem__("num_layers", 4)),
        (r"index\.json", "missing tensor"),
    ),
    "t5-is-text": (lambda r: (r / T5).write_text("not a checkpoint"), (r"models_t5_umt5-xxl-enc-bf16\.pth", "zip")),
    "vae-truncated": (lambda r: truncate(r / VAE), (r"Wan2\.1_VAE\.pth", "zip|torch\\.load")),
    "tokenizer-emptied": (lambda r: [remove(p) for p in (r / TOKENIZER).iterdir()], ("tokenizer folder",)),
    "wav2vec2-config-missing": (lambda r: remove(r / WAV2VEC2 / "config.json"), (r"wav2vec2.*config\.json", "missing")),
    "wav2vec2-weights-missing": (lambda r: remove(r / WAV2VEC2 / "model.safetensors"), ("wav2vec2 weights missing",)),
    "lora-header-not-json": (
        lambda r: replace_header(r / LORA, b"\x00\x01garbage"),
        (r"liveavatar\.safetensors", "damaged safetensors header"),
    ),
    "lora-truncated": (lambda r: truncate(r / LORA, 0.9), (r"liveavatar\.safetensors", "truncated")),
}


@pytest.mark.parametrize("name", CASES)
def test_bad_checkpoint_is_refused_with_every_problem_named(name: str, tiny_weights: Path, tmp_path: Path):
    change, patterns = CASES[name]
    root = tmp_path / "weights"
    shutil.copytree(tiny_weights, root, symlinks=True)
    target = change(root)
    target = target if isinstance(target, Path) else root
    result = invoke("weights", "verify", target)
    assert result.exit_code == 69, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    for pattern in patterns:
        assert re.search(pattern, result.output), f"{pattern!r} not in {result.output}"


def test_the_good_folder_verifies(tiny_weights: Path):
    result = invoke("weights", "verify", tiny_weights)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("part", [SHARD_1, LORA, INDEX, CONFIG, T5])
def test_unreadable_files_are_named_not_a_traceback(part: str, tiny_weights: Path, tmp_path: Path, unreadable_files):
    root = tmp_path / "weights"
    shutil.copytree(tiny_weights, root)
    (root / part).chmod(0)
    result = invoke("weights", "verify", root)
    assert result.exit_code == 69, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert Path(part).name in result.output and "ermission" in result.output, result.output
