"""A machine without espeak-ng (a GPU node) still renders recorded answers:
the catalogue loads as long as nothing would be spoken by espeak-ng, and
otherwise the error names the answer that would be."""

from __future__ import annotations

import pytest

from avatar_batch import batch
from avatar_batch.core.errors import UnavailableError
from avatar_batch.speech import espeak_speakers
from tests.cli.workers_fixtures import use_recordings


@pytest.fixture
def no_espeak(monkeypatch):
    def missing():
        raise UnavailableError("'espeak-ng' was not found on PATH. Install it.")

    monkeypatch.setattr(batch.speech_stage, "installed_voices", missing)


def test_recorded_catalogue_loads_without_espeak(project, no_espeak):
    use_recordings(project)
    catalogue = batch.load(batch.RunOptions(catalogue_path=project.catalogue))
    assert [entry.id for entry in catalogue.entries] == ["smoke-register", "smoke-pharmacy"]
    assert espeak_speakers(catalogue) == []


def test_spoken_answers_without_espeak_name_the_first_and_count_the_rest(project, no_espeak):
    with pytest.raises(UnavailableError) as caught:
        batch.load(batch.RunOptions(catalogue_path=project.catalogue))
    message = str(caught.value)
    assert "'espeak-ng' was not found on PATH" in message
    assert "answer smoke-register/en and 1 more has no recording (field 'audio')" in message
    assert str(project.catalogue) in message


def test_command_voices_and_recordings_need_no_espeak(project):
    data = project.data()
    data["entries"][0]["audio"] = {"en": "../audio/a.wav"}
    from tests.conftest import write_sine_wav

    write_sine_wav(project.root / "audio" / "a.wav", 1.0)
    project.write(data)
    options = batch.RunOptions(catalogue_path=project.catalogue, check_voices=False)
    assert espeak_speakers(batch.load(options)) == ["smoke-pharmacy/en"]
    data["personas"]["dr_chen"]["voices"]["en"] = {
        "engine": "command",
        "argv": ["python3", "say.py", "{text_file}", "{out_wav}"],
    }
    (project.root / "questions" / "say.py").write_text("", encoding="utf-8")
    project.write(data)
    assert espeak_speakers(batch.load(options)) == []
