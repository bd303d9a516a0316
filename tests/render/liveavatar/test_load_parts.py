"""Where a load's time goes: the runner times each network it loads, and the job that
loaded them reports those seconds in its telemetry (a later job, which loads nothing, does not)."""

from __future__ import annotations

from avatar_batch.core.records import RenderSettings
from avatar_batch.render import open_renderer
from benchmarks.render_offload import job_request
from tests.conftest import write_portrait

PX = 64


def test_only_the_job_that_loaded_reports_the_parts(tiny_weights, tmp_path):
    settings = RenderSettings(renderer="liveavatar", size=f"{PX}*{PX}", sample_steps=1, weights_dir=str(tiny_weights))
    portrait = tmp_path / "portrait.png"
    write_portrait(portrait, size=(PX, PX))
    renderer = open_renderer(settings)
    try:
        telemetry = []
        for name in ("first", "second"):
            stream = renderer.start(job_request(name, tmp_path / f"{name}.wav", portrait, 1, settings))
            assert sum(1 for _ in stream) > 0
            telemetry.append(stream.telemetry())
    finally:
        renderer.close()
    first, second = telemetry
    assert set(first["load_parts_s"]) == {"text", "audio", "vae", "dit"}  # no compile on a CPU
    assert all(seconds > 0 for seconds in first["load_parts_s"].values())
    assert sum(first["load_parts_s"].values()) <= first["load_s"]
    assert second["load_s"] == 0 and "load_parts_s" not in second
