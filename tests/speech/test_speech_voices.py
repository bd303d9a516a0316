"""Installed voices: parsing `espeak-ng --voices`, and the real list."""

from __future__ import annotations

from avatar_batch.speech import installed_voices
from avatar_batch.speech.voices import knows_voice, parse_espeak_voices, voices_argv

ESPEAK_VOICES = """Pty Language       Age/Gender VoiceName          File                 Other Languages
 5  af              --/M      Afrikaans          gmw/af
 2  en-us           --/M      English_(America)  gmw/en-US            (en 3)
 5  cmn             --/M      Chinese_(Mandarin,_latin_as_English) sit/cmn              (zh-cmn 5)(zh 5)
 5  yue             --/M      Chinese_(Cantonese) sit/yue              (zh-yue 5)(zh 8)
 5  yue             --/M      Chinese_(Cantonese,_latin_as_Jyutping) sit/yue-Latn-jyutping (zh-yue 5)(zh 8)

"""


def test_voices_argv_golden():
    assert voices_argv() == ["espeak-ng", "--voices"]


def test_parse_espeak_voices():
    assert parse_espeak_voices(ESPEAK_VOICES) == {
        "af": ["af"],
        "en-us": ["en-us", "en"],
        "cmn": ["cmn", "zh-cmn", "zh"],
        "yue": ["yue", "zh-yue", "zh"],  # two rows, one id: merged without repeats
    }


def test_parse_ignores_header_and_noise():
    assert parse_espeak_voices("Pty Language Age/Gender\nsomething else\n") == {}


def test_installed_voices_has_english_and_mandarin():
    voices = installed_voices()
    assert "en-us" in voices and "en" in voices["en-us"]
    assert "cmn" in voices and "zh" in voices["cmn"]


def test_knows_voice_by_id_language_or_variant():
    voices = parse_espeak_voices(ESPEAK_VOICES)
    for known in ("en-us", "EN-US", "en", "zh", "cmn", "en-us+f3"):
        assert knows_voice(known, voices), known
    for unknown in ("xx", "de", "", "+f3"):
        assert not knows_voice(unknown, voices), unknown
