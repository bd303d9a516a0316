"""Names and paths inside a library folder, and nothing else.

<root>/manifest.json               source of truth
<root>/library.sqlite, index.html  derived from the manifest, rebuilt any time
<root>/videos/<entry>/<lang>/<job-id>/{video.mp4, poster.jpg, captions.vtt,
                                       captions.srt, meta.json}
<root>/runs/<utc-time>-<pid>.json  one report per run
<root>/.lock                       held by the run that writes
<root>/.tmp-*                      staging and half-written files of a run
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from avatar_batch.core.errors import EXIT_DATAERR, AvatarBatchError
from avatar_batch.core.fsio import TEMP_PREFIX

MANIFEST_NAME = "manifest.json"
SQLITE_NAME = "library.sqlite"
HTML_NAME = "index.html"
LOCK_NAME = ".lock"
VIDEOS_DIR = "videos"
RUNS_DIR = "runs"
META_NAME = "meta.json"

# commit() key -> file name inside a job folder; the keys are also the
# LibraryItem fields that receive the relative path.
FILE_NAMES: Mapping[str, str] = {
    "video": "video.mp4",
    "poster": "poster.jpg",
    "captions_vtt": "captions.vtt",
    "captions_srt": "captions.srt",
}
PLAYABLE_STATUSES = ("completed", "fallback")
FILE_SIZES_KEY = "file_sizes_bytes"  # in LibraryItem.telemetry: file key -> size


class LibraryError(AvatarBatchError):
    """The library folder holds something it should not (a corrupt manifest,
    an id that cannot be a folder name)."""

    exit_code = EXIT_DATAERR


def check_component(value: str, what: str) -> str:
    """An entry id, language or job id becomes a folder name: refuse anything
    that could climb out of videos/ or collide with our temporary names."""
    bad = (
        not value
        or value in (".", "..")
        or value.startswith(".")
        or any(sep in value for sep in ("/", "\\", "\0"))
        or any(ord(char) < 32 for char in value)
    )
    if bad:
        raise LibraryError(
            f"{what} {value!r} cannot be used as a folder name in the library; "
            "use letters, digits, '-', '_' (no '/', no leading '.')"
        )
    return value


def job_folder_rel(entry_id: str, language: str, job_id: str) -> PurePosixPath:
    """videos/<entry>/<lang>/<job-id>, relative to the library root."""
    return PurePosixPath(
        VIDEOS_DIR,
        check_component(entry_id, "entry id"),
        check_component(language, "language"),
        check_component(job_id, "job id"),
    )


def is_temp_name(name: str) -> bool:
    return name.startswith(TEMP_PREFIX)


def under(root: Path, rel: str | PurePosixPath) -> Path:
    return root.joinpath(*PurePosixPath(rel).parts)
