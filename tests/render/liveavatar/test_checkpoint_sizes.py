"""Sizes read from a folder's own files: one reading for `weights verify`, the
loaders and the writers; no side file, no release default."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from avatar_batch.core.errors import WeightsError
from avatar_batch.render.liveavatar.audio_encoder import load_audio_encoder
from avatar_batch.render.liveavatar.checkpoint import CheckpointLayout, verify_checkpoint, write_tiny_checkpoint
from avatar_batch.render.liveavatar.checkpoint.headers import read_pth_tensors
from avatar_batch.render.liveavatar.checkpoint.sizes import (
    checkpoint_sizes,
    infer_t5_sizes,
    infer_vae_sizes,
    read_sizes,
)
from avatar_batch.render.liveavatar.config import CONFIG_14B, CONFIG_TINY, T5Sizes, VaeSizes
from avatar_batch.render.liveavatar.text_encoder import expected_t5_tensors, load_text_encoder
from avatar_batch.render.liveavatar.vae import expected_vae_tensors, load_vae

# umT5 and VAE sizes no named config has; the umT5 width stays the DiT's text_dim.
ODD_T5 = T5Sizes(vocab=600, dim=4096, dim_attn=48, dim_ffn=80, num_heads=3, num_layers=3, num_buckets=16)
ODD_VAE = VaeSizes(dim=4, dim_mult=(1, 2, 3, 1), num_res_blocks=1, temperal_downsample=(True, False, True))
ODD = replace(CONFIG_TINY, name="custom", t5=ODD_T5, vae=ODD_VAE)


@pytest.fixture(scope="module")
def odd_folder(tmp_path_factory) -> Path:
    """A complete folder in the official layout, written by our own writer with other sizes."""
    root = tmp_path_factory.mktemp("odd-sizes")
    write_tiny_checkpoint(root, ODD, seed=5)
    return root


@pytest.fixture()
def copy_of_odd(odd_folder, tmp_path) -> CheckpointLayout:
    shutil.copytree(odd_folder, tmp_path / "w")
    return CheckpointLayout.at(tmp_path / "w")


def errors(problems):
    return [p for p in problems if p.severity == "error"]


# --- the shape readers invert the manifests -----------------------------------------------


@pytest.mark.parametrize("sizes", [CONFIG_14B.t5, CONFIG_TINY.t5, ODD_T5], ids=["14b", "tiny", "odd"])
def test_t5_sizes_round_trip_through_the_manifest(sizes):
    shapes = {key: shape for key, shape, _ in expected_t5_tensors(sizes)}
    assert infer_t5_sizes(Path("t5.pth"), shapes, text_len=sizes.text_len) == sizes


@pytest.mark.parametrize("sizes", [CONFIG_14B.vae, CONFIG_TINY.vae, ODD_VAE], ids=["14b", "tiny", "odd"])
def test_vae_sizes_round_trip_through_the_manifest(sizes):
    shapes = {key: shape for key, shape, _ in expected_vae_tensors(sizes)}
    assert infer_vae_sizes(Path("vae.pth"), shapes) == sizes


def test_pth_tensors_are_read_without_their_data(tmp_path):
    path = tmp_path / "state.pth"
    torch.save({"a": torch.zeros(3, 4, dtype=torch.bfloat16), "b": torch.ones(2)}, path)
    tensors = read_pth_tensors(path)
    assert [(t.name, t.shape, t.dtype) for t in tensors.values()] == [("a", (3, 4), "bfloat16"), ("b", (2,), "float32")]


# --- a folder with non-release encoder sizes ----------------------------------------------


def test_the_folder_alone_tells_every_size(odd_folder):
    assert not list(odd_folder.rglob("*sizes*.json"))  # nothing of ours beside the official files
    assert checkpoint_sizes(odd_folder) == ODD


def test_non_release_encoder_sizes_verify_clean_and_load(odd_folder):
    assert verify_checkpoint(odd_folder) == []
    layout = CheckpointLayout.at(odd_folder)
    assert load_text_encoder(layout.dit_dir, device="cpu", dtype=torch.float32).sizes == ODD_T5
    assert load_vae(layout.dit_dir, device="cpu", dtype=torch.float32).sizes == ODD_VAE
    assert load_audio_encoder(layout.dit_dir, device="cpu", dtype=torch.float32).sizes == ODD.audio


def test_a_mismatching_tensor_inside_it_is_still_reported(copy_of_odd):
    layout = copy_of_odd
    t5 = torch.load(layout.t5_path, weights_only=True)
    t5["blocks.1.ffn.fc2.weight"] = t5["blocks.1.ffn.fc2.weight"][:, :10].clone()
    torch.save(t5, layout.t5_path)
    vae = torch.load(layout.vae_path, weights_only=True)
    del vae["decoder.head.2.bias"]
    torch.save(vae, layout.vae_path)
    found = [(Path(p.file).name, p.entry, p.message) for p in errors(verify_checkpoint(layout.root))]
    assert found == [
        ("models_t5_umt5-xxl-enc-bf16.pth", "blocks.1.ffn.fc2.weight", "wrong shape"),
        ("Wan2.1_VAE.pth", "decoder.head.2.bias", "missing tensor"),
    ]
    with pytest.raises(WeightsError, match=r"blocks\.1\.ffn\.fc2\.weight"):
        load_text_encoder(layout.dit_dir, device="cpu", dtype=torch.float32)


def test_held_to_a_named_config_the_other_sizes_are_reported(odd_folder):
    problems = errors(verify_checkpoint(odd_folder, "tiny"))
    files = {Path(p.file).name for p in problems}
    assert files == {"models_t5_umt5-xxl-enc-bf16.pth", "Wan2.1_VAE.pth"}  # config.json is the tiny DiT


# --- files that cannot tell, parts that do not fit --------------------------------------------


def test_a_file_that_cannot_tell_its_sizes_is_one_precise_problem(copy_of_odd):
    layout = copy_of_odd
    t5 = torch.load(layout.t5_path, weights_only=True)
    del t5["token_embedding.weight"]
    torch.save(t5, layout.t5_path)
    [problem] = errors(verify_checkpoint(layout.root))
    assert (problem.file, problem.entry) == (str(layout.t5_path), "token_embedding.weight")
    assert "cannot tell the umT5 sizes" in problem.message
    with pytest.raises(WeightsError, match="token_embedding"):
        checkpoint_sizes(layout.root)


def test_widths_that_do_not_fit_together_are_reported(copy_of_odd):
    layout = copy_of_odd
    config = json.loads(layout.wav2vec2_config_path.read_text())
    config["hidden_size"] = 48
    layout.wav2vec2_config_path.write_text(json.dumps(config))
    dit = json.loads(layout.config_path.read_text())
    dit["text_dim"] = 2048
    layout.config_path.write_text(json.dumps(dit))
    messages = [p.message for p in read_sizes(layout.root).problems]
    assert "umT5 width 4096 does not match the DiT's text_dim 2048" in messages
    assert "wav2vec2 hidden_size 48 does not match the DiT's audio_dim 32" in messages
    assert set(messages) <= {p.message for p in verify_checkpoint(layout.root)}


def test_missing_files_are_named(tmp_path):
    write_tiny_checkpoint(tmp_path, encoders=False)
    with pytest.raises(WeightsError) as caught:
        checkpoint_sizes(tmp_path)
    missing = {Path(p.file).name for p in caught.value.problems if p.message == "file is missing"}
    assert missing == {"models_t5_umt5-xxl-enc-bf16.pth", "Wan2.1_VAE.pth", "config.json"}
    [config] = [p for p in caught.value.problems if Path(p.file).name == "config.json"]
    assert "wav2vec2" in config.file


def test_the_tiny_folder_is_named_tiny(tmp_path):
    write_tiny_checkpoint(tmp_path)
    assert checkpoint_sizes(tmp_path) == CONFIG_TINY
