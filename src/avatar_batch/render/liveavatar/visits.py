"""Helper networks that wait in host memory and visit the GPU to work.

A lent helper (umT5: 11 GB in bf16) used to go to the GPU with `module.to("cuda")`
and back with `module.to("cpu")`: a copy from pageable memory there, and a copy
into freshly allocated pageable memory back. On an H200 that cost 10 s of every
job's 11 s of text encoding. `PinnedVisits` keeps one page-locked host copy of
each tensor instead: a visit copies it to the device asynchronously at full
link speed, and the return only drops the device copy, since nothing writes to
the weights. The host copies are made at the first visit and replace the loaded
tensors, which are freed then; a loaded tensor read from a memory-mapped file
gives its pages back as soon as it is copied (file_pages.py), so the two
coexist one tensor at a time.
"""

from __future__ import annotations

from typing import Any

import torch

from avatar_batch.render.liveavatar.file_pages import FileMappings, release_file_pages
from avatar_batch.render.liveavatar.host_memory import carve
from avatar_batch.render.liveavatar.module_tensors import like, replace_tensors, tensor_slots

CPU = torch.device("cpu")


def _host_copies(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Host copies of `tensors`, carved from power-of-two slabs (pinned where a CUDA
    device can use them): one pinned allocation per tensor would round each up."""
    sizes = [t.numel() * t.element_size() for t in tensors]
    raws = carve(sizes, pin=torch.cuda.is_available())
    mappings = FileMappings.now()
    copies = []
    for tensor, raw in zip(tensors, raws):
        copy = raw.view(tensor.dtype).view(tensor.shape)
        copy.copy_(tensor)
        release_file_pages([tensor], mappings)
        copies.append(copy)
    return copies


class PinnedVisits:
    """Moves modules between the host and a device, keeping their host copies."""

    def __init__(self) -> None:
        self._host: dict[int, torch.Tensor] = {}  # id(parameter or buffer object) -> host copy

    def move(self, module: torch.nn.Module, device: torch.device) -> None:
        """Every parameter and buffer of `module` onto `device`: objects are replaced (a
        shared one by the same new object), so the host copies follow them by id."""
        device = torch.device(device)
        self._keep_host_copies(module, device)
        replace_tensors(module, lambda old: self._moved(old, device))

    def _keep_host_copies(self, module: torch.nn.Module, device: torch.device) -> None:
        """Host copies of the tensors that have none yet, all carved at once (a tensor
        already on the host that stays there needs none)."""
        unseen = {
            id(t): t
            for table, name in tensor_slots(module)
            if id(t := table[name]) not in self._host and not (device == CPU and t.device == CPU)
        }
        tensors = [t.detach() for t in unseen.values()]
        for key, copy in zip(unseen, _host_copies(tensors)):
            self._host[key] = copy

    def _moved(self, old: torch.Tensor, device: torch.device) -> torch.Tensor:
        host = self._host.pop(id(old), None)
        if host is None:  # on the host, staying there
            return old
        if device == CPU:
            data = host
        elif old.device == device:
            data = old.detach()
        else:
            data = host.to(device, non_blocking=True)
        new = like(old, data)
        self._host[id(new)] = host
        return new

    def host_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._host.values())


def encoder_mover(visits: PinnedVisits):
    """Mover for the text and audio encoders (a `.model` module and a `.device`)."""

    def move(encoder: Any, device: torch.device) -> Any:
        visits.move(encoder.model, device)
        encoder.device = torch.device(device)
        return encoder

    return move
