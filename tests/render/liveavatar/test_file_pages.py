"""Pages of memory-mapped checkpoint tensors given back once copied (file_pages.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from avatar_batch.render.liveavatar.file_pages import FileMappings, page_span, release_file_pages, to_device_releasing
from avatar_batch.render.liveavatar.text_encoder import load_pth

MIB = 2**20
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise and /proc/self/maps")


def resident_bytes_of(tensor: torch.Tensor) -> int:
    """Rss of the mapping holding `tensor`, from /proc/self/smaps (this mapping alone: no other
    process or page cache pressure can raise it)."""
    start, _ = page_span(tensor)
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and all(c in "0123456789abcdef-" for c in head):
            low, high = (int(edge, 16) for edge in head.split("-"))
            inside = low <= start < high
        elif inside and line.startswith("Rss:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no mapping holds the tensor")


@pytest.fixture
def mapped(tmp_path) -> dict[str, torch.Tensor]:
    torch.save({"big": torch.arange(16 * MIB // 4, dtype=torch.float32), "small": torch.ones(3)}, tmp_path / "w.pth")
    return load_pth(tmp_path / "w.pth")


@linux_only
def test_a_mapped_tensor_gives_its_pages_back_and_keeps_its_values(mapped):
    big = mapped["big"]
    want = torch.arange(16 * MIB // 4, dtype=torch.float32)
    assert torch.equal(big, want)  # reads every page
    assert resident_bytes_of(big) >= 16 * MIB
    assert release_file_pages([big]) >= 16 * MIB
    assert resident_bytes_of(big) < MIB
    assert torch.equal(big, want)  # read back from the file


@linux_only
def test_anonymous_memory_is_never_released():
    tensor = torch.arange(4 * MIB, dtype=torch.float32)
    assert release_file_pages([tensor]) == 0
    assert torch.equal(tensor, torch.arange(4 * MIB, dtype=torch.float32))


def test_file_mappings_come_from_the_maps_lines(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text(
        "7f0000000000-7f0000010000 r--p 00000000 08:01 1234 /weights/umt5.pth\n"
        "7f0000010000-7f0000020000 rw-p 00000000 00:00 0 \n"
        "55d000000000-55d000001000 rw-p 00000000 00:00 0 [heap]\n"
    )
    found = FileMappings.now(maps)
    assert found.covers(0x7F0000000000, 0x7F0000010000) and found.covers(0x7F0000001000, 0x7F0000002000)
    assert not found.covers(0x7F000000F000, 0x7F0000011000)  # runs into the anonymous mapping
    assert not found.covers(0x7F0000010000, 0x7F0000011000) and not found.covers(0x55D000000000, 0x55D000001000)
    assert not FileMappings.now(tmp_path / "absent").covers(0, 1)


def test_moving_to_the_cpu_changes_nothing_and_a_shared_weight_stays_shared():
    module = torch.nn.Linear(3, 1)
    assert to_device_releasing(module, "cpu") is module
    tied = torch.nn.Module()
    tied.a, tied.b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)
    tied.b.weight = tied.a.weight
    to_device_releasing(tied, "meta")
    assert tied.a.weight is tied.b.weight and tied.a.weight.device.type == "meta"
    assert isinstance(tied.a.weight, torch.nn.Parameter)
