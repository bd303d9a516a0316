"""Turn a validated catalogue into one JobSpec per (entry x language).

Each job's id hashes everything that changes its video (see `hashed_fields`),
so a rerun can tell finished work from new work by id alone. Question text and
department are deliberately left out: they label a video in the library but do
not change a pixel or a sample of it, so editing them never re-renders.

A command voice enters the id as its argv template (as written), its
program's version (`engine_version`, asked of the speech stage by the
caller, once per program and run) and the bytes of the project files its
arguments name (a voice model); an espeak-ng voice as it always has, so
existing ids do not change.

The entry id IS hashed, although it does not change the video either: a job id
names a library slot (`videos/<entry>/<lang>/<job-id>/`), and two entries with
the same answer text must stay two rows, and a renamed entry must not inherit
(and then retire) the old entry's row.

Knows nothing of the library or of how speech and video are made.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from avatar_batch.core.errors import CatalogueError, InputFileError, Problem, UsageError
from avatar_batch.core.records import (
    Catalogue,
    CommandVoice,
    Entry,
    JobSpec,
    Persona,
    RenderSettings,
    VoiceSettings,
)
from avatar_batch.core.settings import settings_for_entry
from avatar_batch.plan.ids import FileDigests, job_id

# Bump when the meaning of a job changes in a way the hashed fields cannot see
# (a new caption format, a different mux recipe): every id changes, all re-render.
SCHEMA = 1

RenderPrompt = Callable[[Persona, Entry, str], str]
EngineVersion = Callable[[Path], str]  # a command voice's program -> its version string
ENGINE_COMMAND = "command"


def _no_engine_version(executable: Path) -> str:
    raise UsageError(f"a command voice ({executable}) needs its program's version for the job id; pass engine_version")


def voice_fields(voice: VoiceSettings, engine_version: str | None, files_sha256: dict[str, str]) -> dict[str, Any]:
    """How a voice enters the job id. An espeak-ng voice: its settings, as
    before command voices existed. A command voice: template, version, files."""
    if voice.command is None:
        return {name: value for name, value in asdict(voice).items() if name != "command"}
    return {
        "engine": voice.engine,
        "argv": list(voice.command.argv),
        "engine_version": engine_version,
        "files_sha256": files_sha256,
        "loudness_lufs": voice.loudness_lufs,
    }


def hashed_fields(
    entry: Entry,
    language: str,
    voice: dict[str, Any],
    image_sha256: str,
    audio_sha256: str | None,
    prompt: str,
    settings: RenderSettings,
    model_identity: str,
) -> dict[str, Any]:
    """The document a job id is the hash of."""
    return {
        "schema": SCHEMA,
        "entry_id": entry.id,
        "language": language,
        "answer": entry.answer[language],
        "voice": voice,
        "image_sha256": image_sha256,
        "audio_sha256": audio_sha256,
        "prompt": prompt,
        "settings": settings.hashed_fields(),
        "renderer": settings.renderer,
        "model": model_identity,
    }


def build_jobs(
    catalogue: Catalogue,
    run_settings: RenderSettings,
    model_identity: str,
    render_prompt: RenderPrompt,
    cli_fixed: frozenset[str] = frozenset(),
    only: Collection[str] = (),
    engine_version: EngineVersion = _no_engine_version,
) -> list[JobSpec]:
    """One job per (entry x language), in catalogue order; only the entries
    named in `only` when it is not empty."""
    entries = _selected_entries(catalogue, only)
    _check_texts_and_voices(catalogue, entries)
    run = _RunCaches(FileDigests(), {}, engine_version)  # one per run: shared files are read once
    jobs: list[JobSpec] = []
    for entry in entries:
        settings = settings_for_entry(run_settings, entry, cli_fixed)
        jobs += _entry_jobs(catalogue, entry, settings, run, model_identity, render_prompt)
    return jobs


@dataclass(frozen=True)
class _RunCaches:
    digests: FileDigests
    versions: dict[Path, str]  # program -> version, asked once per run
    engine_version: EngineVersion

    def version(self, executable: Path) -> str:
        if executable not in self.versions:
            self.versions[executable] = self.engine_version(executable)
        return self.versions[executable]


def _voice(catalogue: Catalogue, persona: Persona, language: str) -> VoiceSettings:
    chosen = persona.voices[language]
    if isinstance(chosen, CommandVoice):
        return VoiceSettings(
            engine=ENGINE_COMMAND,
            voice=Path(chosen.argv[0]).name,
            rate_wpm=persona.rate_wpm,
            loudness_lufs=catalogue.defaults.loudness_lufs,
            command=chosen,
        )
    return VoiceSettings(voice=chosen, rate_wpm=persona.rate_wpm, loudness_lufs=catalogue.defaults.loudness_lufs)


def _hashed_voice(voice: VoiceSettings, run: _RunCaches, catalogue: Catalogue, entry: Entry) -> dict[str, Any]:
    if voice.command is None:
        return voice_fields(voice, None, {})
    files = {
        written: _digest(run.digests, path, catalogue, entry, f"file '{written}' of a command voice")
        for written, path in sorted(voice.command.files.items())
    }
    return voice_fields(voice, run.version(voice.command.executable), files)


def _entry_jobs(
    catalogue: Catalogue,
    entry: Entry,
    settings: RenderSettings,
    run: _RunCaches,
    model_identity: str,
    render_prompt: RenderPrompt,
) -> list[JobSpec]:
    persona = catalogue.personas[entry.persona]
    digests = run.digests
    image_path = _resolve(catalogue, persona.image_path)
    image_sha256 = _digest(digests, image_path, catalogue, entry, "persona image")
    jobs: list[JobSpec] = []
    for language in entry.languages:
        voice = _voice(catalogue, persona, language)
        audio_path = _resolve(catalogue, entry.audio[language]) if language in entry.audio else None
        audio_sha256 = None
        if audio_path is not None:
            audio_sha256 = _digest(digests, audio_path, catalogue, entry, f"recording for '{language}'")
        prompt = render_prompt(persona, entry, language)
        hashed_voice = _hashed_voice(voice, run, catalogue, entry)
        fields = hashed_fields(
            entry, language, hashed_voice, image_sha256, audio_sha256, prompt, settings, model_identity
        )
        jobs.append(
            JobSpec(
                job_id=job_id(fields),
                entry_id=entry.id,
                language=language,
                persona=persona.id,
                department=entry.department,
                question=entry.question.get(language, ""),
                answer=entry.answer[language],
                image_path=image_path,
                prompt=prompt,
                voice=voice,
                audio_path=audio_path,
                settings=settings,
                fallback_to_still=entry.fallback_to_still,
            )
        )
    return jobs


def _selected_entries(catalogue: Catalogue, only: Collection[str]) -> tuple[Entry, ...]:
    if not only:
        return catalogue.entries
    wanted = set(only)
    known = {entry.id for entry in catalogue.entries}
    unknown = sorted(wanted - known)
    if unknown:
        raise UsageError(
            f"--only names entries that are not in {catalogue.path}: {', '.join(unknown)}; "
            "check the spelling against the catalogue's entry ids"
        )
    return tuple(entry for entry in catalogue.entries if entry.id in wanted)


def _check_texts_and_voices(catalogue: Catalogue, entries: tuple[Entry, ...]) -> None:
    """The catalogue loader validates these; a catalogue built another way
    (a test, a script) gets the same located errors instead of a KeyError."""
    file = str(catalogue.path)
    problems: list[Problem] = []
    for entry in entries:
        persona = catalogue.personas.get(entry.persona)
        if persona is None:
            problems.append(
                Problem(
                    file=file,
                    message="unknown persona",
                    line=entry.line,
                    entry=entry.id,
                    field="persona",
                    value=entry.persona,
                    fix=f"use one of: {', '.join(sorted(catalogue.personas))}",
                )
            )
            continue
        for language in entry.languages:
            if not entry.answer.get(language):
                problems.append(
                    Problem(
                        file=file,
                        message=f"no answer text for language '{language}'",
                        line=entry.line,
                        entry=entry.id,
                        field=f"answer.{language}",
                        fix="add the answer text or drop the language",
                    )
                )
            if language not in persona.voices:
                problems.append(
                    Problem(
                        file=file,
                        message=f"persona '{persona.id}' has no voice for this language",
                        line=entry.line,
                        entry=entry.id,
                        field="languages",
                        value=language,
                        fix=f"add voices.{language} to persona '{persona.id}'",
                    )
                )
    if problems:
        raise CatalogueError(problems)


def _resolve(catalogue: Catalogue, path: Path) -> Path:
    path = Path(path)
    return path if path.is_absolute() else catalogue.root / path


def _digest(digests: FileDigests, path: Path, catalogue: Catalogue, entry: Entry, what: str) -> str:
    try:
        return digests.sha256(path)
    except OSError as exc:
        raise InputFileError(
            f"{catalogue.path}: entry '{entry.id}': cannot read {what} {path}: {exc.strerror or exc}. "
            "Fix: restore the file or correct the path in the catalogue"
        ) from exc
