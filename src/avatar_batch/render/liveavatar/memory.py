"""Where the Live Avatar networks live between uses, and what happens when memory runs out.

`ComponentHost` holds the helper networks (umT5, wav2vec2, the VAE) and lends
each one on the compute device for its work (docs/model.md §6.6):

* offload "none": every component stays on the compute device;
* offload "model": components wait on the CPU and visit the GPU only while
  they work, as the official single-GPU path does with `offload_model`. The
  VAE visits for the reference encode and stays for the whole streaming
  decode of the job (0.25 GB), then goes back. The runner's movers
  (visits.py) keep one pinned host copy, so a return copies nothing back.

The DiT is not hosted here: it is resident for the run (the official path
never offloads it either). The host is the seam where block-level DiT offload
or fp8 placement can plug in later: a new placement policy changes `_park_device`
and `lend`, the sampler does not change.

`use_expandable_segments` lets the CUDA allocator grow segments instead of
carving fixed ones: a 704x384 bf16 run leaves ~4 GiB beside the DiT's caches,
and with fixed segments the decoder's 0.4 GiB blocks did not fit among the
free pieces (2.9 GiB reserved but unallocated at the failure).

`out_of_memory_guard` turns `torch.cuda.OutOfMemoryError` into the project's
`OutOfMemoryError` after dropping every tensor the failed computation still
referenced (its frames' locals) and returning cached blocks to the driver, so
the batch layer can retry the job one rung down the renderer's ladder in the
same process.
"""

from __future__ import annotations

import gc
import os
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from avatar_batch.core.errors import OutOfMemoryError, UsageError

OFFLOAD_MODES = ("none", "model")
CPU = torch.device("cpu")

Mover = Callable[[Any, torch.device], Any]  # returns the component on that device


ALLOCATOR_SETTING = "PYTORCH_CUDA_ALLOC_CONF"


def use_expandable_segments() -> bool:
    """Ask for expandable allocator segments unless the user chose settings or
    CUDA already allocated (the allocator reads them once). True if set here."""
    if ALLOCATOR_SETTING in os.environ or torch.cuda.is_initialized():
        return False
    os.environ[ALLOCATOR_SETTING] = "expandable_segments:True"
    return True


def move_with_to(component: Any, device: torch.device) -> Any:
    """Mover for components with an in-place `.to(device)` (text and audio encoders)."""
    moved = component.to(device)
    return component if moved is None else moved


@dataclass
class _Hosted:
    component: Any
    mover: Mover
    device: torch.device


class ComponentHost:
    """Named components, placed by the offload mode, lent on the compute device."""

    def __init__(self, compute_device: torch.device, offload: str = "none"):
        self.compute_device = torch.device(compute_device)
        self._offload = _checked_offload(offload)
        self._hosted: dict[str, _Hosted] = {}

    @property
    def offload(self) -> str:
        return self._offload

    def _park_device(self) -> torch.device:
        """Where a component waits when it is not working."""
        return CPU if self._offload == "model" else self.compute_device

    def add(self, name: str, component: Any, device: torch.device, mover: Mover = move_with_to) -> None:
        """Take a freshly loaded component (now on `device`) and park it."""
        self._hosted[name] = _Hosted(component, mover, torch.device(device))
        self._move(name, self._park_device())

    def __contains__(self, name: str) -> bool:
        return name in self._hosted

    def device_of(self, name: str) -> torch.device:
        return self._hosted[name].device

    def set_offload(self, offload: str) -> None:
        """Switch mode between jobs (the OOM ladder asks for "model" on a retry)."""
        self._offload = _checked_offload(offload)
        for name in self._hosted:
            self._move(name, self._park_device())
        release_cached_memory()

    @contextmanager
    def lend(self, name: str) -> Iterator[Any]:
        """The component on the compute device for the duration of the block."""
        self._move(name, self.compute_device)
        try:
            yield self._hosted[name].component
        finally:
            if self._park_device() != self.compute_device:
                self._move(name, self._park_device())
                release_cached_memory()

    def _move(self, name: str, device: torch.device) -> None:
        hosted = self._hosted[name]
        if hosted.device != device:
            hosted.component = hosted.mover(hosted.component, device)
            hosted.device = device

    def clear(self) -> None:
        self._hosted.clear()
        release_cached_memory()


def _checked_offload(offload: str) -> str:
    if offload not in OFFLOAD_MODES:
        raise UsageError(f"offload mode {offload!r} is not one of {', '.join(OFFLOAD_MODES)}")
    return offload


# --- memory accounting and out-of-memory ---------------------------------------------


def release_cached_memory() -> None:
    """Collect dropped tensors and hand the CUDA allocator's cached blocks back.
    `torch.cuda.empty_cache` is a no-op when CUDA was never initialised."""
    gc.collect()
    torch.cuda.empty_cache()


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError)


@contextmanager
def out_of_memory_guard(what: str, hint: str) -> Iterator[None]:
    """Re-raise an accelerator OOM inside the block as `OutOfMemoryError`.

    The frames the error unwound through still hold the KV caches and
    activations in their locals; they are cleared before the memory is released,
    otherwise the traceback would keep gigabytes alive during the retry."""
    try:
        yield
    except torch.cuda.OutOfMemoryError as exc:
        traceback.clear_frames(exc.__traceback__)
        message = f"out of accelerator memory while {what}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}"
        del exc
        release_cached_memory()
        raise OutOfMemoryError(f"{message}. {hint}") from None


def free_device_bytes(device: torch.device) -> int:
    """Bytes this process can still take from the driver on `device`: its free memory,
    capped by the per-process fraction (`torch.cuda.set_per_process_memory_fraction`,
    which is how a smaller card is emulated): the driver's figure alone would promise
    memory the allocator then refuses, after unmapping its cache under pressure."""
    free_bytes, total_bytes = torch.cuda.mem_get_info(device)
    get_fraction = getattr(torch.cuda, "get_per_process_memory_fraction", None)
    if get_fraction is not None:
        index = torch.cuda.current_device() if device.index is None else device.index
        allowed = int(get_fraction(index) * total_bytes) - torch.cuda.memory_reserved(device)
        free_bytes = min(free_bytes, max(0, allowed))
    return free_bytes


def peak_gpu_gib(device: torch.device) -> float:
    if device.type != "cuda":
        return 0.0
    return torch.cuda.max_memory_allocated(device) / 2**30


def reset_peak_gpu(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
