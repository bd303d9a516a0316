"""A persistent cache of the DiT's compiled kernels, so a new process skips the compile.

`torch.compile` (dit/compiled.py) costs every new process tens of seconds on
its first job. torch's portable cache artifacts (`torch.compiler.save_cache_artifacts`
/ `load_cache_artifacts`: the inductor FX-graph and AOTAutograd caches as one
byte string) let a later process reuse that work. Weights folders are often
read-only and shared, so the files live in the user's cache folder
(`settings.compile_cache_dir`, default `$XDG_CACHE_HOME/avatar-batch/compile`).

One file per `CompileKey`: what decides which graphs a run compiles (torch,
GPU model, the placement's formats and resident layers, the video geometry).
torch looks its artifacts up by their own graph hashes, so a file under the
wrong key can only miss, never change a frame; the key keeps files small and
lets runs of different sizes keep their own. A file starts with a header
naming its key, so a file copied from another setup is refused, naming the fields that differ.

`CompileCache.prepare(key)` loads the key's file (once per process) before the
first compile and says "warm" (loaded), "cold" (no usable file) or "off";
`finished(key)` writes the file (atomically) after a key's first job when the
file was missing or unusable, or when the job compiled graphs it lacked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from avatar_batch.core.fsio import write_bytes_atomic
from avatar_batch.render.liveavatar.limits import ClipGeometry
from avatar_batch.render.liveavatar.placement import Placement

log = logging.getLogger(__name__)

MAGIC = b"ABCC0001"  # avatar-batch compile cache, file format 1
HEADER = struct.Struct("<8sI")  # magic, then the byte length of the key's JSON
CacheState = Literal["warm", "cold", "off"]


@dataclass(frozen=True)
class CompileKey:
    """What makes compiled DiT graphs reusable. Byte counts and budgets of the placement
    are left out: they move where tensors live, not the graphs."""

    torch_version: str
    device_name: str  # e.g. "NVIDIA H200", or "cpu"
    capability: str  # CUDA compute capability "9.0", or "cpu"
    compute: str  # placement.compute: bf16 | fp8 | fp32
    weight_format: str
    kv_format: str
    dit_layers_resident: int
    kv_steps_resident: int
    height_px: int
    width_px: int
    frames_per_clip: int

    def file_name(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return f"dit-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:20]}.bin"


def compile_key(
    torch_version: str, device: tuple[str, str], placement: Placement, geometry: ClipGeometry
) -> CompileKey:
    """The key of one job (pure). `device` is (name, capability) from `device_facts`."""
    return CompileKey(
        torch_version,
        *device,
        placement.compute,
        placement.weight_format,
        placement.kv_format,
        placement.dit_layers_resident,
        placement.kv_steps_resident,
        geometry.height_px,
        geometry.width_px,
        geometry.frames_per_clip,
    )


def device_facts(device: torch.device) -> tuple[str, str]:
    """(name, compute capability) of the compute device."""
    if device.type != "cuda":
        return (device.type, device.type)
    major, minor = torch.cuda.get_device_capability(device)
    return (torch.cuda.get_device_name(device), f"{major}.{minor}")


def pack(key: CompileKey, artifacts: bytes) -> bytes:
    header = json.dumps(asdict(key), sort_keys=True).encode("utf-8")
    return HEADER.pack(MAGIC, len(header)) + header + artifacts


def unpack(data: bytes, key: CompileKey) -> bytes:
    """The artifacts of a file written for `key`; ValueError says what is wrong."""
    if len(data) < HEADER.size:
        raise ValueError("shorter than its header")
    magic, length = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ValueError(f"not an avatar-batch compile cache (starts {magic!r}, expected {MAGIC!r})")
    try:
        written_for = json.loads(data[HEADER.size : HEADER.size + length])
    except ValueError as exc:
        raise ValueError(f"unreadable header ({exc})") from exc
    if written_for != asdict(key):
        changed = sorted(k for k, v in asdict(key).items() if written_for.get(k) != v)
        raise ValueError(f"written for another setup (differs in {', '.join(changed)})")
    return data[HEADER.size + length :]


Artifacts = tuple[bytes, frozenset[str]]  # torch's bytes, and the names of the artifacts in them


def _names(info: Any) -> frozenset[str]:
    return frozenset(name for names in info.artifacts.values() for name in names)


def _load_into_torch(artifacts: bytes) -> frozenset[str]:
    """Hot-load into torch's caches; the names of what was loaded."""
    info = torch.compiler.load_cache_artifacts(artifacts)
    if info is None:  # torch's answer (after its own log line) to bytes it cannot read
        raise ValueError("torch could not read its artifacts (corrupt, or another torch build)")
    return _names(info)


def _saved_by_torch() -> Artifacts | None:
    """Everything this process compiled or used from a loaded file; None if nothing."""
    saved = torch.compiler.save_cache_artifacts()
    return None if saved is None else (saved[0], _names(saved[1]))


@dataclass
class CompileCache:
    """The run's cache folder (None: off) and what this process did with each key."""

    folder: Path | None
    load_artifacts: Callable[[bytes], frozenset[str]] = _load_into_torch
    save_artifacts: Callable[[], Artifacts | None] = _saved_by_torch
    states: dict[CompileKey, CacheState] = field(default_factory=dict)
    _loaded: dict[CompileKey, frozenset[str]] = field(default_factory=dict)
    _saved: set[CompileKey] = field(default_factory=set)

    def path(self, key: CompileKey) -> Path:
        if self.folder is None:
            raise RuntimeError("the compile cache is off: no folder")
        return self.folder / key.file_name()

    def prepare(self, key: CompileKey) -> CacheState:
        """Load `key`'s file into torch's caches once per process, before anything compiles."""
        if self.folder is None:
            return "off"
        if key not in self.states:
            self.states[key] = self._load(key)
        return self.states[key]

    def _load(self, key: CompileKey) -> CacheState:
        path = self.path(key)
        if not path.is_file():
            return "cold"
        # A cache file only saves time: whatever is wrong with it (truncated, corrupt, written
        # by another torch) must not fail a render, so every error ends in a cold compile.
        try:
            self._loaded[key] = self.load_artifacts(unpack(path.read_bytes(), key))
        except Exception as exc:  # noqa: BLE001 - see the comment above
            log.warning("compile cache %s is unusable (%s); compiling cold, and rewriting it after this job", path, exc)
            return "cold"
        return "warm"

    def finished(self, key: CompileKey) -> Path | None:
        """After a key's first job in this process: write what torch holds when the file was
        unusable or lacks some of it (a warm run that still compiled). Returns the file written."""
        state = self.states.get(key)
        if self.folder is None or state is None or key in self._saved:
            return None
        self._saved.add(key)
        saved = self.save_artifacts()
        if saved is None or (state == "warm" and saved[1] <= self._loaded.get(key, frozenset())):
            return None
        artifacts = saved[0]
        path = self.path(key)
        # The video is already made; a full disk or a read-only cache folder costs only the
        # next run's compile, so it is reported, not raised.
        try:
            write_bytes_atomic(path, pack(key, artifacts))
        except OSError as exc:
            log.warning("could not write compile cache %s (%s); the next run compiles cold", path, exc)
            return None
        return path
