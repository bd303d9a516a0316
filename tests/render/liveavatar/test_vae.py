"""Wan2.1 VAE: manifest and key map vs the reference dump, tiny write/load,
encode/decode shapes, causality, streaming decode == one-shot decode, size
inference and loud checkpoint errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from avatar_batch.core.errors import WeightsError
from avatar_batch.render.liveavatar.checkpoint.sizes import infer_vae_sizes
from avatar_batch.render.liveavatar.config import CONFIG_TINY, VaeSizes
from avatar_batch.render.liveavatar.placement import Placement
from avatar_batch.render.liveavatar.placement_plan import DECODER_CHUNKS
from avatar_batch.render.liveavatar.text_encoder import load_pth, pth_shapes
from avatar_batch.render.liveavatar.vae import (
    CHUNK_LATENTS,
    LATENTS_MEAN,
    LATENTS_STD,
    VAE_FILENAME,
    expected_vae_tensors,
    load_vae,
    vae_key_map,
    write_tiny_vae,
)
from tests.render.liveavatar.conftest import reference_manifest

TINY = CONFIG_TINY.vae


@pytest.fixture(scope="module")
def reference() -> dict:
    return reference_manifest("vae_state_dict.json")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("vae")
    write_tiny_vae(folder, TINY, seed=3)
    return folder


@pytest.fixture(scope="module")
def vae(tiny_dir):
    return load_vae(tiny_dir, device="cpu", dtype=torch.float32)


def _latents(num_latents: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(1, 16, num_latents, 4, 6, generator=torch.Generator().manual_seed(seed))  # (B, 16, n, h, w)


# --- manifest and key map -------------------------------------------------------------


def test_manifest_equals_reference_for_released_sizes(reference):
    mine = [[key, list(shape), dtype] for key, shape, dtype in expected_vae_tensors(VaeSizes())]
    assert mine == reference["tensors"]
    assert sum(math.prod(shape) for _, shape, _ in mine) == reference["summary"]["num_params"]


def test_key_map_and_statistics_equal_reference(reference):
    assert vae_key_map(VaeSizes()) == reference["to_diffusers_AutoencoderKLWan"]["key_map"]
    assert list(LATENTS_MEAN) == reference["latent_normalization"]["mean"]
    assert list(LATENTS_STD) == reference["latent_normalization"]["std"]


@pytest.mark.parametrize("sizes", [VaeSizes(), TINY], ids=["released", "tiny"])
def test_key_map_targets_exist_with_the_same_shapes_in_diffusers(sizes):
    from diffusers import AutoencoderKLWan

    with torch.device("meta"):
        model = AutoencoderKLWan(
            base_dim=sizes.dim, z_dim=sizes.z_dim, dim_mult=list(sizes.dim_mult),
            num_res_blocks=sizes.num_res_blocks, temperal_downsample=list(sizes.temperal_downsample),
        )  # fmt: skip
    target = {key: tuple(t.shape) for key, t in model.state_dict().items()}
    mapping = vae_key_map(sizes)
    assert {mapping[key]: shape for key, shape, _ in expected_vae_tensors(sizes)} == target


# --- encode / decode ------------------------------------------------------------------


def test_encode_gives_normalised_latents_of_the_right_shape(vae):
    video = torch.rand(1, 3, 9, 32, 48, generator=torch.Generator().manual_seed(1)) * 2 - 1  # (B, 3, T, H, W)
    latents = vae.encode(video)
    assert latents.shape == (1, 16, 3, 4, 6) and latents.dtype == torch.float32
    assert torch.isfinite(latents).all()
    # Normalisation is (mu - mean) / std, per channel, outside the module.
    mu = vae.model.encode(video).latent_dist.mean
    expected = (mu - torch.tensor(LATENTS_MEAN).view(1, -1, 1, 1, 1)) / torch.tensor(LATENTS_STD).view(1, -1, 1, 1, 1)
    torch.testing.assert_close(latents, expected, atol=1e-5, rtol=1e-5)


def test_decode_is_finite_in_range_and_not_saturated(vae):
    video = vae.decode(_latents(3))
    assert video.shape == (1, 3, 9, 32, 48) and video.dtype == torch.float32
    assert torch.isfinite(video).all() and video.abs().max() <= 1.0
    assert 0.05 < video.std() < 0.6 and (video.abs() == 1.0).float().mean() < 0.01


def test_encode_rejects_a_frame_count_the_vae_cannot_chunk(vae):
    with pytest.raises(ValueError, match="1 \\+ 4k frames"):
        vae.encode(torch.zeros(1, 3, 8, 32, 48))


def test_decoder_is_causal(vae):
    """Frames of the first latents never depend on later latents."""
    latents = _latents(5)
    torch.testing.assert_close(vae.decode(latents[:, :, :2]), vae.decode(latents)[:, :, :5], atol=1e-5, rtol=1e-5)


def test_streamed_decode_equals_one_shot_decode(vae):
    latents = _latents(7, seed=2)
    whole = vae.decode(latents)
    stream = vae.stream_decoder()
    chunks = [stream.decode_chunk(latents[:, :, i : i + 3]) for i in range(0, 7, 3)]
    assert [chunk.shape[2] for chunk in chunks] == [1 + 4 * 2, 4 * 3, 4 * 1]
    torch.testing.assert_close(torch.cat(chunks, dim=2), whole, atol=1e-5, rtol=1e-5)


def test_a_stream_decoder_takes_no_more_latents_per_call_than_the_placement_reserved(vae, monkeypatch):
    """The planner reserves room for `decoder_latents` per call; taking more (free memory
    allowing) would eat the headroom the sampler needs."""
    latents = _latents(7, seed=2)
    whole = vae.decode(latents)
    widths: list[int] = []
    real = vae.model.decoder.forward

    def counting(x, *args, **kwargs):
        widths.append(x.shape[2])
        return real(x, *args, **kwargs)

    monkeypatch.setattr(vae.model.decoder, "forward", counting)
    stream = vae.stream_decoder(max_latents=1)
    frames = torch.cat([stream.decode_chunk(latents[:, :, i : i + 3]) for i in range(0, 7, 3)], dim=2)
    assert widths == [1] * 7
    torch.testing.assert_close(frames, whole, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="at least 1 latent"):
        vae.stream_decoder(max_latents=0)


def test_placements_default_to_the_decoders_chunk():
    assert Placement.__dataclass_fields__["decoder_latents"].default == CHUNK_LATENTS == DECODER_CHUNKS[0]


def test_primed_stream_yields_the_frames_after_the_context(vae):
    latents = _latents(7, seed=4)
    whole = vae.decode(latents)
    stream = vae.stream_decoder()
    stream.prime(latents[:, :, :4])  # 13 context frames, discarded
    tail = stream.decode_chunk(latents[:, :, 4:])
    assert tail.shape[2] == 12
    torch.testing.assert_close(tail, whole[:, :, 13:], atol=1e-5, rtol=1e-5)


def test_bf16_vae_stays_close_to_fp32(tiny_dir, vae):
    half = load_vae(tiny_dir, device="cpu", dtype=torch.bfloat16)
    latents = _latents(2)
    assert (half.decode(latents) - vae.decode(latents)).abs().max() < 0.2


def _official_fixture() -> Path:
    """The official-code VAE fixture (see tests/fixtures/official/README.md)."""
    return Path(__file__).resolve().parents[2] / "fixtures" / "official" / "vae"


def test_matches_the_official_vae_on_its_fixture(tmp_path):
    fixture = _official_fixture()
    from safetensors.torch import load_file

    (tmp_path / VAE_FILENAME).write_bytes((fixture / "Wan2.1_VAE_tiny.pth").read_bytes())
    official = load_file(str(fixture / "vae_io.safetensors"))
    vae = load_vae(tmp_path, device="cpu", dtype=torch.float32)
    torch.testing.assert_close(vae.encode(official["clip"][None])[0], official["latents"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(vae.decode(official["latents"][None])[0], official["frames"], atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_tiny_vae_handles_a_quick_preset_clip(vae):
    """The `quick` preset's 256x384 frames, both ways. 13 frames (the first, then three
    chunks of 4) run every temporal path a 49-frame clip runs, at a quarter of its time."""
    video = torch.rand(1, 3, 13, 256, 384) * 2 - 1
    latents = vae.encode(video)
    frames = vae.decode(latents)
    assert latents.shape == (1, 16, 4, 32, 48) and frames.shape == video.shape


# --- size inference and errors --------------------------------------------------------


def test_sizes_are_read_from_tensor_shapes(vae, tmp_path):
    assert vae.sizes == TINY
    odd = VaeSizes(dim=4, dim_mult=(1, 2, 3, 1), num_res_blocks=1, temperal_downsample=(True, False, True))
    write_tiny_vae(tmp_path, odd, seed=0)
    path = tmp_path / VAE_FILENAME
    assert infer_vae_sizes(path, pth_shapes(load_pth(path))) == odd
    loaded = load_vae(tmp_path, device="cpu", dtype=torch.float32)
    assert loaded.decode(_latents(2)).shape == (1, 3, 1 + 4, 32, 48)  # two 2x temporal up-samplers: 1 + 4 frames


def _rewrite(tiny_dir: Path, target: Path, edit) -> Path:
    state = dict(torch.load(tiny_dir / VAE_FILENAME, weights_only=True))
    edit(state)
    torch.save(state, target / VAE_FILENAME)
    return target / VAE_FILENAME


def test_a_file_that_cannot_tell_its_sizes_names_the_tensor(tiny_dir, tmp_path):
    pth = _rewrite(tiny_dir, tmp_path, lambda state: state.pop("encoder.conv1.weight"))
    with pytest.raises(WeightsError) as caught:
        load_vae(tmp_path, device="cpu", dtype=torch.float32)
    [problem] = caught.value.problems  # one precise problem, not hundreds judged against other sizes
    assert (problem.file, problem.entry) == (str(pth), "encoder.conv1.weight")
    assert "cannot tell the VAE sizes" in problem.message


def test_wrong_key_names_file_and_key(tiny_dir, tmp_path):
    def rename(state):
        state["decoder.upsamples.3.time_conv.weights"] = state.pop("decoder.upsamples.3.time_conv.weight")

    pth = _rewrite(tiny_dir, tmp_path, rename)
    with pytest.raises(WeightsError) as caught:
        load_vae(tmp_path, device="cpu", dtype=torch.float32)
    message = str(caught.value)
    assert str(pth) in message and "'decoder.upsamples.3.time_conv.weight'" in message
    assert "'decoder.upsamples.3.time_conv.weights'" in message


def test_missing_file_is_named(tmp_path):
    with pytest.raises(WeightsError, match=VAE_FILENAME):
        load_vae(tmp_path, device="cpu", dtype=torch.float32)


def test_streaming_chunk_size_follows_the_memory_there_is(vae, monkeypatch):
    from avatar_batch.render.liveavatar import vae as vae_module

    assert vae_module.latents_per_call(torch.device("cpu"), 384, 704) == vae_module.CHUNK_LATENTS
    assert vae_module.decode_bytes(3, 384, 704) == 3 * vae_module.decode_bytes(1, 384, 704)
    latents = _latents(7, seed=6)
    chunked = vae.stream_decoder().decode_chunk(latents)
    # Where memory is short the decoder takes one latent per call: same frames, to rounding.
    monkeypatch.setattr(vae_module, "latents_per_call", lambda *_: 1)
    single = vae.stream_decoder().decode_chunk(latents)
    torch.testing.assert_close(single, chunked, atol=1e-5, rtol=1e-5)


def test_a_call_cap_splits_the_chunk_into_single_latent_calls(vae):
    latents = _latents(7, seed=8)
    whole = vae.stream_decoder().decode_chunk(latents)
    stream = vae.stream_decoder()
    calls = []
    real_decoder = vae.model.decoder.forward

    def counted(piece, **kwargs):
        calls.append(piece.shape[2])
        return real_decoder(piece, **kwargs)

    vae.model.decoder.forward = counted
    try:
        capped = stream.decode_chunk(latents, max_latents=1)
    finally:
        del vae.model.decoder.forward
    assert calls == [1] * 7  # the cap holds even where the CPU has room for three
    torch.testing.assert_close(capped, whole, atol=1e-5, rtol=1e-5)
