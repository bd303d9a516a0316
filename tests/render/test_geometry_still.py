from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from avatar_batch.core.records import RenderRequest, RenderSettings, SpeechTrack
from avatar_batch.render.geometry import fit_size, size_for
from avatar_batch.render.image import fit_frame
from avatar_batch.render.still import StillRenderer, speech_levels


# (image h, w) -> (H, W) for 704*384, from the worked examples of the model's geometry rule.
@pytest.mark.parametrize(
    "image_hw, expected",
    [
        ((400, 720), (384, 704)),
        ((720, 400), (704, 384)),
        ((1080, 1920), (384, 704)),
        ((1024, 1024), (512, 512)),
        ((480, 640), (448, 576)),
    ],
)
def test_fit_size_matches_reference_examples(image_hw, expected):
    assert size_for("704*384", *image_hw) == expected


@pytest.mark.parametrize("size", ["384*256", "688*368", "704*384", "720*400"])
@pytest.mark.parametrize("image_hw", [(768, 768), (960, 720), (720, 1280), (300, 200), (5000, 64)])
def test_sizes_are_multiples_of_64_within_area(size, image_hw):
    w, h = (int(v) for v in size.split("*"))
    height, width = size_for(size, *image_hw)
    assert height % 64 == 0 and width % 64 == 0
    assert height * width <= w * h


def test_small_image_is_not_upscaled():
    assert fit_size(128, 128, 704 * 384) == (128, 128)


def test_fit_frame_black_bars_vs_cover():
    image = Image.new("RGB", (720, 400), (255, 255, 255))
    padded = fit_frame(image, 384, 704, pad_mode="black")
    covered = fit_frame(image, 384, 704, pad_mode="cover")
    assert padded.shape == covered.shape == (384, 704, 3)
    assert padded[:, 0].max() == 0 and padded[:, -1].max() == 0  # the official black side bars
    assert covered.min() == 255


def test_still_stream_frames_follow_speech(tmp_path, portrait, sine_wav):
    speech = SpeechTrack(sine_wav, sine_wav, 1.0, -16.0, (), tmp_path / "c.vtt", tmp_path / "c.srt", "recording")
    request = RenderRequest("job", portrait, "prompt", speech, RenderSettings(size="384*256"))
    stream = StillRenderer().start(request)
    frames = list(stream)
    assert stream.geometry.num_frames == 25 == len(frames)
    assert (stream.geometry.height_px, stream.geometry.width_px) == (320, 256)
    assert all(f.shape == (320, 256, 3) and f.dtype == np.uint8 for f in frames)
    # the level bar moves with the loudness envelope
    assert len({f[-3:].tobytes() for f in frames}) > 5
    assert stream.telemetry()["frames"] == 25


def test_speech_levels_silence_is_zero(tmp_path):
    from tests.conftest import write_sine_wav

    wav = write_sine_wav(tmp_path / "s.wav", duration_s=0.5)
    levels = speech_levels(wav, 25, 20)  # more frames than audio: tail is silent
    assert levels.max() == pytest.approx(1.0) and levels[-5:].max() == 0.0


def test_still_renderer_has_no_cheaper_rungs():
    from avatar_batch.core.records import RenderSettings

    assert StillRenderer().ladder(RenderSettings(renderer="still", offload="none")) == []
