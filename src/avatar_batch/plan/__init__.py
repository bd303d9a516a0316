"""The plan stage: catalogue -> jobs with content-hash ids -> what to render,
skip and retire. Pure and fast; imports only `avatar_batch.core` and itself."""

from avatar_batch.plan.ids import FileDigests, canonical_json, job_id
from avatar_batch.plan.jobs import SCHEMA, build_jobs, hashed_fields
from avatar_batch.plan.planner import Plan, estimate_speech_s, job_speech_s, make_plan, wav_duration_s

__all__ = [
    "SCHEMA",
    "FileDigests",
    "Plan",
    "build_jobs",
    "canonical_json",
    "estimate_speech_s",
    "hashed_fields",
    "job_id",
    "job_speech_s",
    "make_plan",
    "wav_duration_s",
]
