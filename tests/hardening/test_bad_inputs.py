"""Every case of the bad-input corpus through `validate` and `render`: the
documented exit code, a message naming file, entry and field, no traceback,
and an existing library left byte for byte and mtime for mtime as it was."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from avatar_batch.cli import app
from tests.hardening import bad_catalogues, bad_files
from tests.hardening.bad_inputs import set_audio, set_image, wav_bytes
from tests.hardening.projects import make_project, snapshot

CASES = bad_catalogues.CASES + bad_files.CASES


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_the_corpus_is_large_and_names_are_unique():
    names = [bad.name for bad in CASES]
    assert len(names) >= 40 and len(set(names)) == len(names)


@pytest.mark.parametrize("bad", CASES, ids=lambda bad: bad.name)
def test_bad_input_is_refused_and_changes_nothing(bad, tmp_path: Path, smoke_library: Path, request):
    if bad.unreadable:
        request.getfixturevalue("unreadable_files")
    project = make_project(tmp_path / "project")
    catalogue = bad.make(project)
    before = snapshot(smoke_library)
    for args in (["validate", catalogue], ["render", catalogue, "--plain", "--library", smoke_library]):
        result = invoke(*args)
        assert result.exit_code == bad.code, f"{args[0]}: {result.output}"
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
        for pattern in bad.expect:
            assert re.search(pattern, result.output), f"{args[0]}: {pattern!r} not in {result.output}"
    assert snapshot(smoke_library) == before
    assert not (project.root / "output").exists()
    assert not list(tmp_path.rglob("PWNED")) and not Path("PWNED").exists()


def _jpeg_named_png(project):
    from PIL import Image

    Image.open(project.root / "assets" / "dr_chen.png").convert("RGB").save(project.root / "assets" / "j.png", "JPEG")
    return set_image(project, "../assets/j.png")


def _streamed_wav(project):
    # A WAV written to a pipe: the writer could not know the sizes, so they
    # are 0xFFFFFFFF; ffmpeg reads it to the end of the file.
    data = bytearray(wav_bytes(0.5))
    assert data[36:40] == b"data"
    data[4:8] = b"\xff\xff\xff\xff"  # RIFF size
    data[40:44] = b"\xff\xff\xff\xff"  # data size
    (project.root / "assets" / "streamed.wav").write_bytes(bytes(data))
    return set_audio(project, "../assets/streamed.wav")


def _bom_catalogue(project):
    project.catalogue.write_bytes(b"\xef\xbb\xbf" + project.catalogue.read_bytes())
    return project.catalogue


def _odd_but_whole_wav(project):
    # A LIST chunk before fmt and an odd-sized chunk (padded): still whole.
    import struct

    data = wav_bytes(0.5)
    extra = b"LIST" + struct.pack("<I", 5) + b"INFOx\x00"
    body = data[12:]
    riff = b"RIFF" + struct.pack("<I", 4 + len(extra) + len(body)) + b"WAVE"
    (project.root / "assets" / "tagged.wav").write_bytes(riff + extra + body)
    return set_audio(project, "../assets/tagged.wav")


@pytest.mark.parametrize(
    "make",
    [_jpeg_named_png, _streamed_wav, _bom_catalogue, _odd_but_whole_wav],
    ids=lambda make: make.__name__.strip("_"),
)
def test_odd_but_whole_inputs_are_accepted(make, tmp_path: Path):
    """The checks refuse what is broken, not what is merely unusual: content
    decides an image's format, and a WAV's sizes may be unknown."""
    project = make_project(tmp_path / "project")
    result = invoke("validate", make(project))
    assert result.exit_code == 0, result.output
