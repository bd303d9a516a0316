"""Benchmark, not a test: build and plan 1,000 entries x 2 languages.

    python -m tests.plan.bench_plan      (from the repository root)

The plan must stay well under a second so `avatar-batch plan` feels instant
on a real catalogue.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from avatar_batch.core.records import LibraryItem, RenderSettings
from avatar_batch.plan import build_jobs, make_plan
from tests.plan.plan_fixtures import make_catalogue, make_entry, render_prompt

NUM_ENTRIES = 1_000


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        entries = tuple(
            make_entry(
                f"faq-{n:04d}",
                persona="ana" if n % 2 else "ben",
                answer={"en": "We open at nine. " * 20, "zh": "我们九点开门。" * 20},
            )
            for n in range(NUM_ENTRIES)
        )
        catalogue = make_catalogue(root, entries)
        start_s = time.perf_counter()
        jobs = build_jobs(catalogue, RenderSettings(), "model-sha", render_prompt)
        built_s = time.perf_counter()
        half = {
            job.job_id: LibraryItem(
                job.job_id,
                job.entry_id,
                job.language,
                job.persona,
                job.department,
                job.question,
                job.answer,
                "completed",
            )
            for job in jobs[::2]
        }
        plan = make_plan(jobs, half, lambda item: True)
        planned_s = time.perf_counter()
    print(
        f"{len(jobs)} jobs: build_jobs {built_s - start_s:.3f} s, make_plan {planned_s - built_s:.3f} s, "
        f"{len(plan.to_render)} to render, ~{plan.estimated_video_s:.0f} s of video"
    )


if __name__ == "__main__":
    main()
