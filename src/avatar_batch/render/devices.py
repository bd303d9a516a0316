"""What accelerators this machine offers, for `doctor` and the runner.

torch is imported only when asked, and its absence is an answer, not an error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MEMINFO = Path("/proc/meminfo")


@dataclass(frozen=True)
class Accelerator:
    index: int
    name: str
    memory_gib: float
    compute_capability: str
    memory_bytes: int = 0


def torch_version() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.__version__


def accelerators() -> list[Accelerator]:
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    found = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        found.append(
            Accelerator(
                index,
                props.name,
                round(props.total_memory / 2**30, 1),
                f"{props.major}.{props.minor}",
                int(props.total_memory),
            )
        )
    return found


def host_available_bytes(meminfo: Path = MEMINFO) -> int:
    """Memory the host can give this process without swapping: MemAvailable from
    /proc/meminfo (page cache the kernel can drop included), else free physical pages."""
    if meminfo.is_file():
        for line in meminfo.read_text(encoding="ascii", errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name == "MemAvailable":
                return int(value.split()[0]) * 1024  # the file counts kB
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def visible_gpu_ids(env: Mapping[str, str], driver_dir: Path = Path("/proc/driver/nvidia/gpus")) -> tuple[str, ...]:
    """CUDA device ids a process started with `env` would see, without
    importing torch or touching CUDA (the parent of GPU workers must not
    initialise CUDA, and `plan` must stay fast). CUDA_VISIBLE_DEVICES wins
    (an empty value hides every GPU); otherwise the NVIDIA driver's list."""
    listed = env.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return tuple(part.strip() for part in listed.split(",") if part.strip() and part.strip() != "-1")
    if not driver_dir.is_dir():
        return ()
    return tuple(str(index) for index in range(sum(1 for _ in driver_dir.iterdir())))
