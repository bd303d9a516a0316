"""How `RayPool` turns what Ray says into events, with a stand-in for Ray: a
lost actor is a dead worker (its job is retried), an exception inside the
work is that job's failure, returned files land in the staging folder."""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from avatar_batch.executors import Task
from avatar_batch.executors.protocol import Died, Done
from avatar_batch.executors.ray_pool import RayPool


class RayTaskError(Exception):
    pass


class RayActorError(Exception):
    pass


def fake_ray(answer):
    def get(reference):
        if isinstance(answer, Exception):
            raise answer
        return answer

    exceptions = SimpleNamespace(RayTaskError=RayTaskError, RayActorError=RayActorError)
    return SimpleNamespace(get=get, exceptions=exceptions)


def watched(answer, tmp_path: Path):
    pool = object.__new__(RayPool)  # no cluster: only the event mapping is under test
    pool._ray = fake_ray(answer)
    pool._events = queue.Queue()
    pool._closing = threading.Event()
    task = Task("job", "job", tmp_path, None, 1.0)
    pool._watch("r0", object(), lambda value: pool._store("r0", task, value))
    return pool._events.get(timeout=60)


def test_returned_files_are_written_into_the_staging_folder(tmp_path):
    event = watched(("item", {"video.mp4": b"mp4", "poster.jpg": b"jpg"}), tmp_path)
    assert event == Done("r0", "job", "item")
    assert (tmp_path / "video.mp4").read_bytes() == b"mp4" and (tmp_path / "poster.jpg").read_bytes() == b"jpg"


@pytest.mark.parametrize(
    "error, expected",
    [
        (RayActorError("The actor died unexpectedly\nmore"), Died("r0", "Ray actor lost: The actor died unexpectedly")),
        (RayTaskError("ValueError: bad frame\ntraceback"), Done("r0", "", error="ValueError: bad frame")),
        (ConnectionError("node lost"), Died("r0", "Ray actor lost: node lost")),
    ],
)
def test_ray_failures_become_deaths_or_job_failures(tmp_path, error, expected):
    assert watched(error, tmp_path) == expected
