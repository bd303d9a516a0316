"""The staged, threaded shard reader returns exactly what safetensors reads, whatever the
number of threads and however small its staging buffers; a short file is an error."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from avatar_batch.render.liveavatar.checkpoint.headers import TensorInfo, read_header
from avatar_batch.render.liveavatar.checkpoint.shard_reader import ShardReader, _runs_of_equal_bytes


@pytest.fixture
def shard(tmp_path):
    gen = torch.Generator().manual_seed(0)
    tensors = {
        "a.weight": torch.randn(37, 53, generator=gen).to(torch.bfloat16),
        "b.bias": torch.randn(5, generator=gen),
        "c.scalar": torch.tensor(3.5, dtype=torch.float16),
        "d.empty": torch.empty(0, 4),
        "e.codes": torch.randint(0, 255, (9, 11), generator=gen, dtype=torch.uint8),
    }
    path = tmp_path / "shard.safetensors"
    save_file(tensors, str(path))
    return path


@pytest.mark.parametrize(("threads", "staging_bytes"), [(1, 64), (3, 100), (4, 1 << 20)])
def test_reads_every_tensor_as_safetensors_does(shard, threads, staging_bytes):
    names = ["e.codes", "a.weight", "b.bias", "c.scalar", "d.empty"]
    read = ShardReader(torch.device("cpu"), threads=threads, staging_bytes=staging_bytes).read(shard, names)
    with safe_open(str(shard), framework="pt", device="cpu") as handle:
        for name in names:
            expected = handle.get_tensor(name)
            assert read[name].dtype == expected.dtype and read[name].shape == expected.shape, name
            assert torch.equal(read[name], expected), name


def test_one_reader_serves_many_reads_and_a_subset(shard):
    reader = ShardReader(torch.device("cpu"), threads=2, staging_bytes=64)
    first = reader.read(shard, ["a.weight"])
    again = reader.read(shard, ["b.bias", "a.weight"])
    assert set(first) == {"a.weight"} and set(again) == {"a.weight", "b.bias"}
    assert torch.equal(first["a.weight"], again["a.weight"])


def test_runs_are_contiguous_and_about_equal():
    infos = [TensorInfo(f"t{i}", "uint8", (100,), 100 * i, 100 * (i + 1)) for i in range(10)]
    runs = _runs_of_equal_bytes(infos, 4)
    assert [info for run in runs for info in run] == infos  # in file order, none lost
    assert len(runs) == 4 and max(len(run) for run in runs) <= 3
    assert _runs_of_equal_bytes(infos[:2], 4) == [[infos[0]], [infos[1]]]  # never more runs than tensors


def test_a_file_that_ends_inside_a_tensor_is_an_error(shard, tmp_path):
    short = tmp_path / "short.safetensors"
    header = read_header(shard)
    last = max(header.tensors.values(), key=lambda info: info.end)
    short.write_bytes(shard.read_bytes()[: header.data_start + last.begin + 3])
    with pytest.raises(EOFError, match="ends"):
        ShardReader(torch.device("cpu"), threads=1, staging_bytes=64).read(short, [last.name])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_the_pinned_staged_read_equals_safetensors(tmp_path):
    gen = torch.Generator().manual_seed(1)
    tensors = {f"w{i}": torch.randn(1000 + i, 513, generator=gen).to(torch.bfloat16) for i in range(12)}
    path = tmp_path / "big.safetensors"
    save_file(tensors, str(path))
    read = ShardReader(torch.device("cuda"), threads=4, staging_bytes=1 << 18).read(path, list(tensors))
    for name, expected in tensors.items():
        assert read[name].is_cuda and torch.equal(read[name].cpu(), expected), name
