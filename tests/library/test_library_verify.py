"""verify() against real MP4s made broken in the ways disks and runs break them."""

from __future__ import annotations

from pathlib import Path

from avatar_batch.library import Library, ffprobe_argv
from avatar_batch.library.verify import Probe, parse_probe, verify_items
from tests.library.library_fixtures import commit_new, make_item


def test_ffprobe_argv_golden():
    assert ffprobe_argv(Path("videos/a b/en/x/video.mp4"), "/usr/bin/ffprobe") == [
        "/usr/bin/ffprobe",
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_entries",
        "format=duration:stream=codec_type",
        "videos/a b/en/x/video.mp4",
    ]


def test_parse_probe():
    stdout = b'{"streams":[{"codec_type":"video"},{"codec_type":"audio"}],"format":{"duration":"1.024000"}}'
    assert parse_probe(stdout) == Probe(1.024, ("video", "audio"))
    assert parse_probe(b'{"format":{"duration":"N/A"}}') == Probe(None, ())


def test_a_good_library_verifies(library: Library, tiny_mp4: Path):
    item = commit_new(library, tiny_mp4, "a" * 16)
    assert library.verify() == []
    assert library.verify_item(item)


def test_a_truncated_video_is_found(library: Library, tiny_mp4: Path):
    item = commit_new(library, tiny_mp4, "a" * 16)
    video = library.root / item.video
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    problems = library.verify()
    assert [p.field for p in problems] == ["video"]
    assert "bytes" in problems[0].message and problems[0].entry == "hours"
    assert "--force" in problems[0].render()
    assert not library.verify_item(item)


def test_a_deleted_file_is_found(library: Library, tiny_mp4: Path):
    item = commit_new(library, tiny_mp4, "a" * 16)
    (library.root / item.captions_vtt).unlink()
    problems = library.verify()
    assert [(p.field, "missing" in p.message) for p in problems] == [("captions_vtt", True)]
    assert not library.verify_item(item)
    (library.root / item.video).unlink()
    assert {p.field for p in library.verify()} == {"video", "captions_vtt"}


def test_a_video_that_does_not_decode_is_found(library: Library, tiny_mp4: Path):
    item = commit_new(library, tiny_mp4, "a" * 16)
    video = library.root / item.video
    video.write_bytes(b"\0" * video.stat().st_size)  # same size: only ffprobe can tell
    assert library.verify_item(item)  # the fast check cannot see this
    problems = library.verify()
    assert len(problems) == 1 and "ffprobe cannot read it" in problems[0].message


def test_a_duration_that_disagrees_with_the_row_is_found(library: Library, tiny_mp4: Path):
    commit_new(library, tiny_mp4, "a" * 16, duration_s=1.05)
    assert library.verify() == []  # within 0.1 s
    commit_new(library, tiny_mp4, "b" * 16, duration_s=3.0, language="zh")
    problems = library.verify()
    assert len(problems) == 1 and "lasts 1.0 s but its row says 3.0 s" in problems[0].message


def test_missing_streams_are_found(library: Library, tiny_mp4: Path):
    item = commit_new(library, tiny_mp4, "a" * 16)
    silent = verify_items(library.root, [item], probe=lambda path: Probe(1.0, ("video",)))
    assert len(silent) == 1 and "no audio stream" in silent[0].message


def test_only_playable_rows_are_checked(library: Library, tiny_mp4: Path):
    item = commit_new(library, tiny_mp4, "a" * 16)
    library.retire([item])
    (library.root / item.video).unlink()
    library.record(make_item("b" * 16, entry_id="parking", status="failed"))
    assert library.verify() == []
