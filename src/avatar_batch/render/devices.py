"""What accelerators this machine offers, for `doctor` and the runner.

torch is imported only when asked, and its absence is an answer, not an error.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Accelerator:
    index: int
    name: str
    memory_gib: float
    compute_capability: str


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
            Accelerator(index, props.name, round(props.total_memory / 2**30, 1), f"{props.major}.{props.minor}")
        )
    return found
