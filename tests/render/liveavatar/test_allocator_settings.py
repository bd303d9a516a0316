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
