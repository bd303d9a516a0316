"""Content-addressed job ids.

A job id is the first 16 hex digits of the sha256 of a canonical JSON document
of everything that changes a job's video. This module knows how to hash; which
fields go in is decided by `plan.jobs`. File digests are cached per
(path, size, mtime_ns) so a catalogue whose 1,000 entries share two portraits
reads two files, not a thousand.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from avatar_batch.core.fsio import file_sha256 as _hash_file

JOB_ID_HEX_CHARS = 16


def canonical_json(fields: Mapping[str, Any]) -> str:
    """Sorted keys, no whitespace, UTF-8 kept as is: the same mapping always
    gives the same text, whatever order it was built in."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def job_id(fields: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(canonical_json(fields).encode("utf-8")).hexdigest()
    return digest[:JOB_ID_HEX_CHARS]


class FileDigests:
    """sha256 of file bytes, remembered for one run.

    The key includes size and mtime_ns so a file edited during a long-lived
    process is hashed again instead of answering with a stale digest.
    """

    def __init__(self) -> None:
        self._by_stat: dict[tuple[str, int, int], str] = {}

    def __len__(self) -> int:
        return len(self._by_stat)

    def sha256(self, path: Path) -> str:
        stat = os.stat(path)
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        cached = self._by_stat.get(key)
        if cached is None:
            cached = _hash_file(path)
            self._by_stat[key] = cached
        return cached
