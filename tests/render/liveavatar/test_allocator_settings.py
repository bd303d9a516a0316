"""The CUDA allocator settings the runner asks for before its first allocation."""

from __future__ import annotations

import torch

from avatar_batch.render.liveavatar import memory


def test_expandable_segments_are_asked_for_once_and_never_override_the_user(monkeypatch):
    monkeypatch.delenv(memory.ALLOCATOR_SETTING, raising=False)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    assert memory.use_expandable_segments()
    assert memory.os.environ[memory.ALLOCATOR_SETTING] == "expandable_segments:True"
    assert not memory.use_expandable_segments()  # already set: left alone

    monkeypatch.setenv(memory.ALLOCATOR_SETTING, "max_split_size_mb:512")
    assert not memory.use_expandable_segments()
    assert memory.os.environ[memory.ALLOCATOR_SETTING] == "max_split_size_mb:512"


def test_nothing_is_set_once_cuda_has_allocated(monkeypatch):
    monkeypatch.delenv(memory.ALLOCATOR_SETTING, raising=False)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    assert not memory.use_expandable_segments()
    assert memory.ALLOCATOR_SETTING not in memory.os.environ


def test_free_memory_respects_the_per_process_fraction(monkeypatch):
    gib = 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (100 * gib, 140 * gib))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device: 30 * gib)
    monkeypatch.setattr(torch.cuda, "get_per_process_memory_fraction", lambda index: 48 / 140)
    # A 48 GiB card emulated on a 140 GiB one, 30 GiB already reserved: 18 GiB, not the driver's 100.
    assert memory.free_device_bytes(torch.device("cuda", 0)) == 18 * gib
    monkeypatch.setattr(torch.cuda, "get_per_process_memory_fraction", lambda index: 1.0)
    assert memory.free_device_bytes(torch.device("cuda", 0)) == 100 * gib
