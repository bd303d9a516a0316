"""`weights random`: a full-layout random checkpoint, written shard by shard, that
`weights verify` accepts and the renderer renders (tiny config on the CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from avatar_batch.cli import app
from avatar_batch.core.records import RenderRequest, RenderSettings, SpeechTrack
from avatar_batch.render.liveavatar.checkpoint import verify_checkpoint
from avatar_batch.render.liveavatar.checkpoint.random_weights import (
    noise_pool,
    pooled_noise,
    shard_groups,
    write_random_checkpoint,
)
from avatar_batch.render.liveavatar.config import CONFIG_TINY
from avatar_batch.render.liveavatar.renderer import LiveAvatarRenderer
from tests.conftest import write_portrait, write_sine_wav


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("random")
    result = CliRunner().invoke(app, ["weights", "random", str(root), "--config", "tiny"])
    assert result.exit_code == 0, result.output
    return root


def test_the_folder_passes_verify(folder):
    assert verify_checkpoint(folder) == []
    assert CliRunner().invoke(app, ["weights", "verify", str(folder)]).exit_code == 0


def test_small_shards_split_the_dit_and_the_index_names_them_all(tmp_path):
    layout = write_random_checkpoint(tmp_path, CONFIG_TINY, shard_bytes=200_000)
    index = json.loads(layout.index_path.read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 2 and all((layout.dit_dir / name).is_file() for name in shards)
    assert verify_checkpoint(tmp_path) == []


def test_shard_groups_keep_file_order_and_the_size_cap():
    entries = [("a", (10,)), ("b", (10,)), ("c", (100,)), ("d", (1,))]
    assert shard_groups(entries, 40) == [["a", "b"], ["c"], ["d"]]


def test_pooled_noise_is_unit_normal_and_differs_per_key():
    pool = noise_pool(0)
    a, b = pooled_noise(pool, "blocks.0.ffn.0.weight", (64, 300_000)), pooled_noise(pool, "other", (64, 300_000))
    assert abs(a.std().item() - 1) < 0.01 and not torch.equal(a, b)
    assert torch.equal(a, pooled_noise(pool, "blocks.0.ffn.0.weight", (64, 300_000)))  # seeded: the same again


def test_the_random_folder_renders_finite_frames(folder, tmp_path):
    # 64 px: finite, varied frames do not depend on the size, and the VAE's work is a quarter of 128 px's.
    write_portrait(tmp_path / "portrait.png", size=(64, 64))
    wav = tmp_path / "speech.wav"
    write_sine_wav(wav, duration_s=0.5)
    settings = RenderSettings(renderer="liveavatar", size="64*64", sample_steps=1, weights_dir=str(folder))
    speech = SpeechTrack(wav, wav, 0.5, -16.0, (), wav, wav, "tts")
    renderer = LiveAvatarRenderer(settings)
    try:
        stream = renderer.start(RenderRequest("job", tmp_path / "portrait.png", "A doctor.", speech, settings))
        frames = list(stream)
    finally:
        renderer.close()
    assert len(frames) == round(0.5 * 25) and frames[0].shape == (64, 64, 3)
    assert np.std(np.stack(frames)) > 0  # not a flat (NaN-clamped) picture
