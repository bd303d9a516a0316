"""benchmarks/load_speed.py on the CPU with the tiny checkpoint: the staged reader moves
each shard's data byte for byte, and every way of reading reports its rate or its error."""

import torch

from avatar_batch.render.liveavatar.checkpoint.headers import read_header
from benchmarks import load_speed


def test_the_staged_read_returns_each_shards_data_byte_for_byte(tiny_weights):
    for shard in load_speed._shards(tiny_weights):
        start = read_header(shard).data_start
        # A chunk far smaller than the shard: both staging buffers take turns many times.
        read = load_speed.pinned_read(shard, "cpu", chunk_bytes=4096 + 7)
        assert torch.equal(read, torch.frombuffer(bytearray(shard.read_bytes()[start:]), dtype=torch.uint8))


def test_every_way_reports_a_rate_or_why_it_could_not_run(tiny_weights):
    rows = load_speed.read_ways(tiny_weights, "cpu")
    assert [row["way"] for row in rows][:5] == [
        "safetensors",
        "safetensors-threads-4",
        "pinned-read",
        "pinned-read-threads-2",
        "pinned-read-threads-4",
    ]
    assert all(row["gb_per_s"] > 0 for row in rows[:5])
    assert all(("gb_per_s" in row) != ("error" in row) for row in rows)
    assert rows[-1]["way"] == "shard-reader" and rows[-1]["gb_per_s"] > 0
