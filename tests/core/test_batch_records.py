"""What the batch records: the run report's peaks and placements, and the settings
an out-of-memory ladder actually rendered with."""

from __future__ import annotations

from pathlib import Path

from avatar_batch.batch import JobRunner, RunReport, SilentProgress
from avatar_batch.core.errors import OutOfMemoryError
from avatar_batch.core.records import JobSpec, RenderSettings, VoiceSettings
from avatar_batch.library import Library
from avatar_batch.render.liveavatar.renderer import oom_ladder as ladder


def test_run_report_sums_up_peaks_and_placements():
    placed = {"offload": "blocks", "dit_layers_resident": 8}
    report = RunReport("r", "t", "c", "l", {})
    report.jobs = [
        {"status": "completed", "telemetry": {"peak_gpu_gib": 20.5, "peak_rss_gib": 60.0, "placement": placed}},
        {"status": "completed", "telemetry": {"peak_gpu_gib": 21.0, "peak_rss_gib": 58.0, "placement": placed}},
        {"status": "failed", "telemetry": {}},
    ]
    resources = report.to_dict()["resources"]
    assert resources["peak_gpu_gib"] == 21.0 and resources["peak_rss_gib"] == 60.0
    assert resources["expected_peak_gpu_gib"] is None and resources["placements"] == [placed]


class LadderRenderer:
    """Runs out of memory until the rung streams blocks with an fp8 KV cache."""

    name = "fake"
    ladder = staticmethod(ladder)

    def close(self) -> None: ...


def test_the_ladder_records_the_rung_that_rendered(tmp_path: Path):
    settings = RenderSettings(renderer="still", preset="high", size="704*384")
    runner = JobRunner(Library(tmp_path / "lib"), settings, SilentProgress())
    runner.renderer = LadderRenderer()
    tried = []

    def render_into(renderer, job, staged, speech):
        tried.append((job.settings.offload, job.settings.kv_format))
        if (job.settings.offload, job.settings.kv_format) != ("blocks", "fp8"):
            raise OutOfMemoryError("out of accelerator memory")
        return "muxed", {"frames": 1}

    runner._render_into = render_into  # type: ignore[method-assign]
    job = JobSpec("id", "e", "en", "p", "d", "q", "a", tmp_path / "x.png", "prompt", VoiceSettings(), None, settings)
    _, telemetry = runner._render_down_ladder(job, tmp_path, None)
    assert tried == [("auto", "bf16"), ("blocks", "bf16"), ("blocks", "fp8")]
    assert telemetry["oom_retries"] == 2 and telemetry["settings_used"]["kv_format"] == "fp8"
    assert telemetry["settings_used"]["offload"] == "blocks" and telemetry["settings_used"]["size"] == "704*384"
