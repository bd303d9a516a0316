"""PinnedVisits: one host copy per tensor (carved from slabs), device copies dropped on return (never copied back).

The "device" here is the meta device: a visit's copy is then free, and a copy back
to the host would raise (meta tensors hold no data), so a return that copied would fail.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from avatar_batch.render.liveavatar.visits import CPU, PinnedVisits, encoder_mover

META = torch.device("meta")


class Tied(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)
        self.head = torch.nn.Linear(4, 10, bias=False)
        self.head.weight = self.embed.weight  # shared, as tied embeddings are
        self.norm = torch.nn.BatchNorm1d(4)  # has buffers


def _pointers(module: torch.nn.Module) -> list[int]:
    return [t.data_ptr() for t in [*module.parameters(), *module.buffers()]]


def test_a_visit_moves_every_parameter_and_buffer_and_the_return_restores_the_same_host_tensors():
    module = Tied()
    visits = PinnedVisits()
    visits.move(module, META)
    assert {t.device for t in [*module.parameters(), *module.buffers()]} == {META}
    visits.move(module, CPU)
    host = _pointers(module)  # the host copies, which replaced the loaded tensors
    visits.move(module, META)
    visits.move(module, CPU)
    assert _pointers(module) == host  # no copy back: the very same host memory
    assert module.head.weight is module.embed.weight


def test_round_trips_keep_one_host_copy_and_the_outputs():
    module = Tied().eval()
    tokens = torch.tensor([1, 2, 3])
    expected = module.head(module.norm(module.embed(tokens)))
    visits = PinnedVisits()
    for _ in range(3):
        visits.move(module, META)
        visits.move(module, CPU)
    assert visits.host_bytes() == sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])
    assert torch.equal(module.head(module.norm(module.embed(tokens))), expected)


def test_moving_to_where_a_module_already_is_changes_nothing():
    module = Tied()
    before = _pointers(module)
    PinnedVisits().move(module, CPU)
    assert _pointers(module) == before


def test_the_encoder_mover_moves_the_model_and_records_the_device():
    encoder = SimpleNamespace(model=torch.nn.Linear(3, 3), device=CPU)
    move = encoder_mover(PinnedVisits())
    assert move(encoder, META) is encoder
    assert encoder.device == META and encoder.model.weight.device == META
    move(encoder, CPU)
    assert encoder.device == CPU and encoder.model.weight.device == CPU
