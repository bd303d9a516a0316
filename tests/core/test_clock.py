"""One clock, one timestamp format: `YYYY-MM-DDTHH:MM:SSZ` everywhere."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from avatar_batch.core.clock import file_stamp, iso_utc, utc_now

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "avatar_batch"
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
# Ways of reading or formatting the wall clock that must live only in core/clock.py.
CLOCK_CALLS = re.compile(r"datetime\.now|utcnow|\.isoformat\(|strftime|time\.gmtime|time\.localtime|time\.ctime")


def test_iso_utc_is_seconds_with_z_in_utc():
    moment = datetime(2025, 1, 2, 5, 4, 5, 999_000, tzinfo=timezone(timedelta(hours=2)))
    assert iso_utc(moment) == "2025-01-02T03:04:05Z"
    assert iso_utc(datetime(2025, 1, 2, 3, 4, 5)) == "2025-01-02T03:04:05Z"  # naive is UTC
    assert ISO_Z.match(iso_utc())


def test_file_stamp_is_the_same_instant_without_colons():
    moment = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert file_stamp(moment) == "20250102T030405Z"


def test_utc_now_is_aware_utc():
    assert utc_now().utcoffset() == timedelta(0)


def test_only_the_clock_module_reads_or_formats_the_clock():
    offenders = [
        f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
        for path in PACKAGE.rglob("*.py")
        if path != PACKAGE / "core" / "clock.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if CLOCK_CALLS.search(line)
    ]
    assert not offenders, "use avatar_batch.core.clock instead:\n" + "\n".join(offenders)
