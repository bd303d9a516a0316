"""Host inputs of a denoising call reach the GPU without stopping the host.

A copy from pageable host memory returns only once the GPU has run everything
queued before it. Once per call that drains the launch queue; in a video's first
job it also puts the GPU's work and dynamo's tracing one after the other instead
of side by side. Staged through pinned memory (torch's caching host allocator
keeps each block until its copy has run), the copy is queued and the host goes on.
"""

from __future__ import annotations

import torch


def to_device(tensor: torch.Tensor, device: torch.device | None) -> torch.Tensor:
    """`tensor` on `device` (None: where it is); a CPU -> CUDA copy is queued, not waited for."""
    if device is None or tensor.device == device:
        return tensor
    if torch.device(device).type != "cuda" or tensor.device.type != "cpu":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)
