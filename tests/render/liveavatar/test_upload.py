"""Host inputs reach the compute device unchanged, and a CUDA copy does not wait for the GPU."""

from __future__ import annotations

import pytest
import torch

from avatar_batch.render.liveavatar.dit.upload import to_device


def test_a_cpu_run_keeps_the_tensor_itself():
    x = torch.randn(3, 4)
    assert to_device(x, torch.device("cpu")) is x
    assert to_device(x, None) is x


def test_a_dtype_or_layout_survives_the_move():
    x = torch.arange(12, dtype=torch.int64).reshape(3, 4).t()  # not contiguous
    moved = to_device(x, torch.device("cpu"))
    assert moved.dtype == torch.int64 and torch.equal(moved, x)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_cuda_copy_is_queued_behind_running_work_not_waited_for():
    device = torch.device("cuda")
    host = torch.randn(1 << 20)  # 4 MiB: a pageable copy this size would wait for the queue
    torch.cuda.synchronize()
    torch.cuda._sleep(2_000_000_000)  # about a second of GPU time queued ahead of the copy
    moved = to_device(host, device)
    assert not torch.cuda.current_stream().query(), "the host waited for the queued GPU work"
    torch.cuda.synchronize()
    assert moved.device.type == "cuda" and torch.equal(moved.cpu(), host)
