"""wav2vec2 audio path: the alignment rules against the spec's worked examples
and the official formulas, the 16 kHz WAV reader, and a tiny wav2vec2 folder
written, loaded offline and run."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from avatar_batch.core.errors import InputFileError, WeightsError
from avatar_batch.render.liveavatar.audio_encoder import (
    WAV2VEC2_SUBDIR,
    frame_indices,
    load_audio_encoder,
    load_speech_16k,
    num_30hz_frames,
    num_audio_frames,
    num_clips,
    per_frame_features,
    resample_to_30hz,
    write_tiny_wav2vec2,
)
from avatar_batch.render.liveavatar.config import CONFIG_TINY

TINY = CONFIG_TINY.audio

# Spec §3.3 worked examples: audio seconds -> (T_a, N30, clips, video frames 48N - 3).
WORKED_EXAMPLES = [
    (1.00, 49, 29, 1, 45),
    (1.95, 97, 58, 2, 93),
    (5.00, 249, 149, 3, 141),
    (10.00, 499, 299, 6, 285),
    (37.30, 1864, 1118, 20, 957),
]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("w2v")
    write_tiny_wav2vec2(folder, TINY, seed=5)
    return folder


@pytest.fixture(scope="module")
def encoder(tiny_dir):
    return load_audio_encoder(tiny_dir, device="cpu", dtype=torch.float32)


def _noise(num_samples: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(num_samples) * 0.1).astype(np.float32)


def _write_wav(path: Path, samples: np.ndarray, rate_hz: int, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(2)
        handle.setframerate(rate_hz)
        handle.writeframes((samples * 32767).astype("<i2").tobytes())
    return path


# --- alignment ------------------------------------------------------------------------


@pytest.mark.parametrize("seconds, t_a, n30, clips, video_frames", WORKED_EXAMPLES)
def test_worked_examples_of_the_spec(seconds, t_a, n30, clips, video_frames):
    assert num_audio_frames(round(seconds * 16_000)) == t_a
    assert num_30hz_frames(t_a) == n30
    assert num_clips(n30) == clips
    assert 48 * num_clips(n30) - 3 == video_frames


def test_conv_output_length_is_the_hop_formula():
    for num_samples in (400, 719, 720, 16_000, 31_200, 596_800):
        assert num_audio_frames(num_samples) == (num_samples - 400) // 320 + 1
    assert num_audio_frames(399) == 0


def test_30hz_length_keeps_the_official_float_rounding():
    assert [num_30hz_frames(t) for t in (0, 1, 2, 50, 100)] == [0, 0, 1, 30, 60]
    assert num_30hz_frames(205) == 122  # exact floor(205 * 0.6) is 123; float64 gives 122.99999999999999


def test_clip_count_matches_the_official_float_formula():
    for frames_per_clip in (12, 48, 96):
        for n30 in range(0, 4000):
            assert num_clips(n30, frames_per_clip) == int(n30 / (frames_per_clip * (30 / 25))) + 1


def test_frame_indices_match_official_sampling():
    """The official sampler: linspace over the clip duration at 25 fps, rounded at 30 Hz."""
    count = 48 * 300
    times_s = np.linspace(0, count / 25, count, endpoint=False)
    assert frame_indices(count).tolist() == np.round(times_s * 30).astype(int).tolist()
    assert frame_indices(6).tolist() == [0, 1, 2, 4, 5, 6]


def test_resample_is_linear_with_aligned_corners():
    t_a = 97
    ramp = torch.arange(t_a, dtype=torch.float64).view(1, t_a, 1).expand(3, t_a, 2)  # value = 50 Hz index
    out = resample_to_30hz(ramp)
    assert out.shape == (3, 58, 2) and out.dtype == torch.float32
    expected = torch.linspace(0, t_a - 1, 58, dtype=torch.float32)
    torch.testing.assert_close(out[1, :, 0], expected)
    assert resample_to_30hz(torch.zeros(2, 1, 4)).shape == (2, 0, 4)


def test_per_frame_features_pick_and_pad_with_zeros():
    n30, layers, channels = 29, 2, 3
    feat30 = torch.arange(n30, dtype=torch.float32).view(1, n30, 1).expand(layers, n30, channels) + 1
    out = per_frame_features(feat30, 48)
    assert out.shape == (layers, channels, 48)
    picked = out[0, 0]
    for k in range(48):
        j = round(1.2 * k)
        assert picked[k] == (j + 1 if j < n30 else 0), k
    assert (out[:, :, 24:] == 0).all() and (out[:, :, :24] > 0).all()  # j(24) = 29 = N30


# --- the speech file ------------------------------------------------------------------


def test_reads_the_speech_stage_wav(sine_wav):
    samples = load_speech_16k(sine_wav)
    assert samples.dtype == np.float32 and samples.shape == (16_000,)
    assert 0.2 < np.abs(samples).max() <= 1.0


@pytest.mark.parametrize("rate_hz, channels", [(22_050, 1), (16_000, 2)])
def test_rejects_other_rates_and_stereo(tmp_path, rate_hz, channels):
    path = _write_wav(tmp_path / "x.wav", np.zeros(800 * channels, dtype=np.float32), rate_hz, channels)
    with pytest.raises(InputFileError, match="16000 Hz mono"):
        load_speech_16k(path)


def test_missing_or_broken_wav_is_an_input_error(tmp_path):
    with pytest.raises(InputFileError, match="does not exist"):
        load_speech_16k(tmp_path / "none.wav")
    (tmp_path / "bad.wav").write_bytes(b"not a wav")
    with pytest.raises(InputFileError, match="bad.wav"):
        load_speech_16k(tmp_path / "bad.wav")


# --- the tiny model -------------------------------------------------------------------


def test_features_are_all_hidden_states(encoder):
    samples = _noise(16_000 * 2)
    feat = encoder.features(samples)
    assert feat.shape == (TINY.num_layers + 1, num_audio_frames(len(samples)), TINY.hidden_size)
    assert feat.dtype == torch.float32 and torch.isfinite(feat).all()


def test_state_layout_is_input_layer_outputs_then_final_layer_norm(encoder):
    """State 0 feeds layer 1; state 24 is layer 24's output after the encoder LayerNorm."""
    layers = encoder.model.wav2vec2.encoder.layers
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        layers[0].register_forward_pre_hook(lambda module, args: seen.__setitem__("first_in", args[0])),
        layers[-1].register_forward_hook(lambda module, args, out: seen.__setitem__("last_out", out)),
    ]
    try:
        feat = encoder.features(_noise(8_000))
    finally:
        for hook in hooks:
            hook.remove()
    last_out = seen["last_out"][0] if isinstance(seen["last_out"], tuple) else seen["last_out"]
    torch.testing.assert_close(feat[0], seen["first_in"][0])
    torch.testing.assert_close(feat[-1], encoder.model.wav2vec2.encoder.layer_norm(last_out)[0])
    assert not torch.allclose(feat[-1], last_out[0])


def test_each_utterance_is_normalised(encoder):
    """Zero mean and unit variance per file: gain and DC offset do not matter."""
    samples = _noise(12_000, seed=3)
    torch.testing.assert_close(encoder.features(samples * 4 + 0.05), encoder.features(samples), atol=1e-4, rtol=1e-4)


def test_folder_loads_offline_as_the_official_code_loads_it(tiny_dir):
    from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor

    folder = tiny_dir / WAV2VEC2_SUBDIR
    processor = Wav2Vec2Processor.from_pretrained(str(folder), local_files_only=True)
    model = Wav2Vec2ForCTC.from_pretrained(str(folder), local_files_only=True)
    assert processor.feature_extractor.do_normalize and processor.feature_extractor.sampling_rate == 16_000
    assert model.config.do_stable_layer_norm and model.config.feat_extract_norm == "layer"
    assert model.config.num_hidden_layers == 24 and len(processor.tokenizer) == TINY.vocab_size


def test_missing_folder_is_a_weights_error(tmp_path):
    with pytest.raises(WeightsError, match=WAV2VEC2_SUBDIR):
        load_audio_encoder(tmp_path, device="cpu", dtype=torch.float32)


def test_missing_preprocessor_config_is_named(tiny_dir, tmp_path):
    target = tmp_path / WAV2VEC2_SUBDIR
    target.mkdir()
    for path in (tiny_dir / WAV2VEC2_SUBDIR).iterdir():
        if path.name != "preprocessor_config.json":
            (target / path.name).write_bytes(path.read_bytes())
    with pytest.raises(WeightsError, match="preprocessor_config.json"):
        load_audio_encoder(tmp_path, device="cpu", dtype=torch.float32)


def test_unnormalised_preprocessing_is_refused(tiny_dir, tmp_path):
    target = tmp_path / WAV2VEC2_SUBDIR
    target.mkdir()
    for path in (tiny_dir / WAV2VEC2_SUBDIR).iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    config_path = target / "preprocessor_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config_path.write_text(json.dumps({**config, "do_normalize": False}), encoding="utf-8")
    with pytest.raises(WeightsError, match="do_normalize"):
        load_audio_encoder(tmp_path, device="cpu", dtype=torch.float32)
