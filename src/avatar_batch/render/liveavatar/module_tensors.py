"""Replacing every parameter and buffer of a module, a tensor shared by two owners once.

`visits.py` (helpers between pinned host copies and the GPU) and `file_pages.py`
(a memory-mapped load moved to the GPU) both swap a module's tensors one by one
rather than with `module.to`, each to do something per tensor; this is the walk
they share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch


def tensor_slots(module: torch.nn.Module) -> Iterator[tuple[dict[str, Any], str]]:
    """(table, name) of every parameter and buffer; a shared tensor appears once per owner."""
    for owner in module.modules():
        for table in (owner._parameters, owner._buffers):
            for name, tensor in table.items():
                if tensor is not None:
                    yield table, name


def replace_tensors(module: torch.nn.Module, replacement: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Put `replacement(old)` in the place of every parameter and buffer; a tensor shared by
    two owners is replaced once, so both get the same new object (tied weights stay tied)."""
    new: dict[int, torch.Tensor] = {}  # id(old object) -> its replacement
    for table, name in list(tensor_slots(module)):
        old = table[name]
        if id(old) not in new:
            new[id(old)] = replacement(old)
        table[name] = new[id(old)]


def like(old: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    """`data` as what `old` was: a frozen Parameter for a parameter, the plain tensor for a buffer."""
    return torch.nn.Parameter(data, requires_grad=False) if isinstance(old, torch.nn.Parameter) else data
