"""Per-job telemetry of the Live Avatar renderer: generation rate and real-time factor."""

from __future__ import annotations

import pytest

from avatar_batch.core.records import VIDEO_FPS
from avatar_batch.render.liveavatar.telemetry import PhaseClock, job_telemetry, real_time_factor


def test_real_time_factor_is_the_generation_rate_over_the_playback_rate():
    assert VIDEO_FPS == 25
    assert real_time_factor(25.0) == 1.0
    assert real_time_factor(12.7) == pytest.approx(0.508)
    assert real_time_factor(0.0) == 0.0


@pytest.mark.parametrize(("frames", "fps", "factor"), [(96, 24.0, 0.96), (200, 50.0, 2.0), (0, 0.0, 0.0)])
def test_job_telemetry_counts_sampling_and_decode_only(frames, fps, factor):
    # Load and encoders are excluded: the rate is what the sampler and the decoder sustain.
    clock = PhaseClock(seconds={"load": 30.0, "text": 2.0, "sampling": 3.0, "decode": 1.0})
    data = job_telemetry(clock, frames=frames, peak_gpu_gib=1.5, facts={"device": "cpu"})
    assert data["generation_fps"] == fps and data["real_time_factor"] == factor
    assert data["frames"] == frames and data["device"] == "cpu" and data["load_s"] == 30.0


def test_no_generation_time_reports_zero_rates():
    data = job_telemetry(PhaseClock(), frames=10, peak_gpu_gib=0.0, facts={})
    assert data["generation_fps"] == 0.0 and data["real_time_factor"] == 0.0
