"""Read what a weight file holds (names, shapes, dtypes) without reading its tensors.

A safetensors file is an 8-byte little-endian header length N, N bytes of
JSON ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": …}),
then the data; we parse that ourselves. Checking a 10 GB shard therefore costs
one small read, and a truncated download shows up as data offsets past the end
of the file. A torch `.pth` (zip) file is unpickled onto the `meta` device: the
pickle names every tensor with its shape and dtype, the data is never read.
"""

from __future__ import annotations

import json
import math
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

from avatar_batch.core.errors import Problem

# safetensors dtype tag -> (torch dtype name, bytes per element)
DTYPES = {
    "BF16": ("bfloat16", 2),
    "F16": ("float16", 2),
    "F32": ("float32", 4),
    "F64": ("float64", 8),
    "F8_E4M3": ("float8_e4m3fn", 1),
    "F8_E5M2": ("float8_e5m2", 1),
    "I64": ("int64", 8),
    "I32": ("int32", 4),
    "I16": ("int16", 2),
    "I8": ("int8", 1),
    "U8": ("uint8", 1),
    "BOOL": ("bool", 1),
}
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the format's own limit
FIX_PERMISSIONS = "check the file's permissions"


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str  # torch spelling, e.g. "bfloat16"
    shape: tuple[int, ...]
    begin: int  # offsets relative to the start of the data section
    end: int


@dataclass(frozen=True)
class SafetensorsHeader:
    path: Path
    data_start: int  # 8 + header length
    file_bytes: int
    tensors: dict[str, TensorInfo]

    @property
    def data_end(self) -> int:
        return max((t.end for t in self.tensors.values()), default=0)


class HeaderError(ValueError):
    """The file is not a readable weight file (truncated header, bad JSON, not a zip...)."""

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.fix = fix  # None: the caller's usual fix (download the file again)


def read_header(path: Path) -> SafetensorsHeader:
    path = Path(path)
    try:
        file_bytes = path.stat().st_size
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise HeaderError(f"only {len(prefix)} bytes: no header length")
            (length,) = struct.unpack("<Q", prefix)
            if length > MAX_HEADER_BYTES or 8 + length > file_bytes:
                raise HeaderError(f"header length {length} does not fit a file of {file_bytes} bytes")
            raw = handle.read(length)
    except OSError as exc:  # unreadable (permissions, I/O error): a problem to report, not a crash
        raise HeaderError(f"cannot be read: {exc.strerror}", FIX_PERMISSIONS) from exc
    try:
        entries = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HeaderError(f"header is not JSON: {exc}") from exc
    try:
        tensors = _tensors(entries)
    except (AttributeError, TypeError, ValueError) as exc:  # valid JSON of the wrong shape
        raise HeaderError(f"header is not a map of tensor entries: {exc}") from exc
    return SafetensorsHeader(path, 8 + length, file_bytes, tensors)


def _tensors(entries: dict) -> dict[str, TensorInfo]:
    tensors = {}
    for name, entry in entries.items():
        if name == "__metadata__":
            continue
        tag = entry.get("dtype")
        begin, end = entry.get("data_offsets", (0, 0))
        dtype = DTYPES.get(tag, (str(tag), 0))[0]
        tensors[name] = TensorInfo(name, dtype, tuple(int(n) for n in entry.get("shape", ())), int(begin), int(end))
    return tensors


def data_problems(header: SafetensorsHeader) -> list[Problem]:
    """Data section vs file size (a truncated download) and per-tensor byte counts."""
    file = str(header.path)
    problems = []
    available = header.file_bytes - header.data_start
    if header.data_end > available:
        problems.append(
            Problem(
                file,
                f"file is truncated: tensors need {header.data_end:,} data bytes, {available:,} present",
                fix="download this file again",
            )
        )
    for t in header.tensors.values():
        tag_bytes = next((size for name, size in DTYPES.values() if name == t.dtype), 0)
        if not tag_bytes:
            problems.append(Problem(file, "unknown dtype", entry=t.name, value=t.dtype))
        elif t.end - t.begin != math.prod(t.shape) * tag_bytes:
            problems.append(
                Problem(
                    file,
                    "byte range does not match shape and dtype",
                    entry=t.name,
                    value=f"{t.end - t.begin} bytes for {list(t.shape)} {t.dtype}",
                )
            )
    return problems


@dataclass(frozen=True)
class PthTensor:
    name: str
    dtype: str  # torch spelling, e.g. "bfloat16"
    shape: tuple[int, ...]


def read_pth_tensors(path: Path) -> dict[str, PthTensor]:
    """The tensors of a torch zip `.pth` state dict, in file order, read onto the meta device."""
    import torch

    path = Path(path)
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:  # is_zipfile would call this "not a zip archive"
        raise HeaderError(f"cannot be read: {exc.strerror}", FIX_PERMISSIONS) from exc
    if not zipfile.is_zipfile(path):
        raise HeaderError("not a torch zip archive (truncated or wrong file)")
    try:
        state = torch.load(path, map_location="meta", weights_only=True)
    # A torn or foreign archive fails anywhere from the zip reader to the (weights-only) unpickler.
    except (RuntimeError, OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise HeaderError(f"cannot be opened by torch.load: {exc}") from exc
    if not isinstance(state, dict):
        raise HeaderError(f"does not hold a state dict but a {type(state).__name__}")
    tensors = {}
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise HeaderError(f"entry {name!r} is a {type(value).__name__}, not a tensor")
        tensors[name] = PthTensor(name, str(value.dtype).removeprefix("torch."), tuple(value.shape))
    return tensors
