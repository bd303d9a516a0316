"""The one clock, and the one way every timestamp is written.

Every time the tool writes (manifest rows and header, run reports, log lines)
is `iso_utc`: UTC, whole seconds, "Z" suffix, e.g. `2025-01-02T03:04:05Z`.
Those strings sort in time order, which `recover_manifest` relies on to pick
the newest row. File names that carry a time use `file_stamp`
(`20250102T030405Z`): the same instant without colons, which some file
systems and URLs refuse. Nothing else in the package reads the wall clock.
"""

from __future__ import annotations

from datetime import UTC, datetime

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
FILE_STAMP_FORMAT = "%Y%m%dT%H%M%SZ"


def utc_now() -> datetime:
    """The current instant, timezone-aware in UTC."""
    return datetime.now(UTC)


def iso_utc(moment: datetime | None = None) -> str:
    """`moment` (default: now) as `YYYY-MM-DDTHH:MM:SSZ`; a naive datetime is taken as UTC."""
    moment = utc_now() if moment is None else moment
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(ISO_FORMAT)


def file_stamp(moment: datetime | None = None) -> str:
    """`moment` (default: now) as `YYYYMMDDTHHMMSSZ`, for file names."""
    moment = utc_now() if moment is None else moment
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(FILE_STAMP_FORMAT)
