"""Read safetensors headers ourselves, without loading or mapping any tensor.

A safetensors file is an 8-byte little-endian header length N, N bytes of
JSON ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": …}),
then the data. Checking a 10 GB shard therefore costs one small read, and a
truncated download shows up as data offsets past the end of the file.
"""

from __future__ import annotations

import json
import math
import struct
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
    """The file is not a readable safetensors file (truncated header, bad JSON...)."""


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
        raise HeaderError(f"cannot be read: {exc.strerror}") from exc
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
