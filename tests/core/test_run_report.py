"""The run report's per-run resources: peaks over the jobs and the placements used."""

from __future__ import annotations

from avatar_batch.batch import RunReport


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
