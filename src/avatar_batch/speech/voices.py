"""Which TTS voices this machine has, for `validate` and `doctor`.

pyttsx3 on Linux speaks through espeak-ng, so espeak-ng's own voice list is
the list: `espeak-ng --voices` is one fast process, where asking pyttsx3
would load the speech library in-process. A voice id is what goes into
`VoiceSettings.voice` (the "Language" column, e.g. "en-us", "cmn").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from avatar_batch.core import proc
from avatar_batch.core.records import Catalogue

VOICES_TIMEOUT_S = 30.0
INSTALL_HINT = "Install it with your package manager, e.g. `apt-get install espeak-ng`."

# " 5  cmn  --/M  Chinese_(Mandarin,_latin_as_English)  sit/cmn  (zh-cmn 5)(zh 5)"
#   priority, voice id, age/gender, name, file, then other languages with priorities
_VOICE_LINE = re.compile(r"^\s*(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*(.*)$")
_OTHER_LANGUAGE = re.compile(r"\(([^\s()]+)\s+\d+\)")


def voices_argv() -> list[str]:
    return ["espeak-ng", "--voices"]


def parse_espeak_voices(text: str) -> dict[str, list[str]]:
    """voice id -> languages it speaks (its own first). Rows sharing an id merge."""
    voices: dict[str, list[str]] = {}
    for line in text.splitlines():
        match = _VOICE_LINE.match(line)
        if not match:
            continue  # the header row and blank lines
        voice_id = match.group(2)
        languages = voices.setdefault(voice_id, [])
        for language in [voice_id, *_OTHER_LANGUAGE.findall(match.group(6))]:
            if language not in languages:
                languages.append(language)
    return voices


def installed_voices() -> dict[str, list[str]]:
    proc.require_program("espeak-ng", INSTALL_HINT)
    done = proc.run(voices_argv(), timeout_s=VOICES_TIMEOUT_S, what="espeak-ng --voices")
    return parse_espeak_voices(done.stdout.decode("utf-8", "replace"))


def knows_voice(voice_id: str, voices: Mapping[str, Sequence[str]]) -> bool:
    """Whether espeak-ng can speak `voice_id`: a voice id or a language one
    speaks, case-insensitive, with an optional "+variant" (e.g. "en-us+f3")."""
    name = voice_id.split("+", 1)[0].strip().lower()
    return any(name == known.lower() or name in {lang.lower() for lang in langs} for known, langs in voices.items())


def espeak_speakers(catalogue: Catalogue) -> list[str]:
    """The "entry/language" answers that would be spoken by espeak-ng: no
    recording, and the persona's voice for that language is an espeak-ng id
    (a command voice runs its own program). A catalogue with none renders on a
    machine without espeak-ng, e.g. a GPU node rendering recorded answers."""
    speakers = []
    for entry in catalogue.entries:
        persona = catalogue.personas.get(entry.persona)
        for language in entry.languages:
            voice = persona.voices.get(language) if persona is not None else None
            if language not in entry.audio and (voice is None or isinstance(voice, str)):
                speakers.append(f"{entry.id}/{language}")
    return speakers
