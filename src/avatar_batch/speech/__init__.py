"""The speech stage: a job's answer becomes a loudness-normalised speech track.

`synthesize(job, work_dir)` takes the job's recording if it has one, else
speaks the answer with a local TTS engine, then writes into `work_dir`:

1. `speech_raw.wav`    - the decoded recording or the TTS output, as produced;
2. `speech_master.wav` - 48 kHz mono s16, EBU R128 normalised to the voice's
   loudness target (two-pass loudnorm in linear mode, true-peak limited to
   <= -1.5 dBTP first where needed; see `loudness`), for the mux;
3. `speech_16k.wav`    - 16 kHz mono s16 from the master, for the model;
4. `captions.vtt`, `captions.srt` - one cue per sentence;
5. `speech.json`       - how it was made (source, TTS engine used and why
   earlier engines failed, loudness measurements); with TTS also
   `speech_raw_text.txt`, the text handed to the engine.

Imports only `avatar_batch.core` and itself.
"""

from __future__ import annotations

from pathlib import Path

from avatar_batch.core.errors import InputFileError
from avatar_batch.core.fsio import atomic_path, write_json_atomic, write_text_atomic
from avatar_batch.core.records import JobSpec, SpeechTrack
from avatar_batch.speech import audio, captions, loudness, tts
from avatar_batch.speech.captions import make_cues, split_sentences, to_srt, to_vtt
from avatar_batch.speech.command import command_version
from avatar_batch.speech.voices import espeak_speakers, installed_voices

RAW_WAV = "speech_raw.wav"
MASTER_WAV = "speech_master.wav"
MODEL_WAV = "speech_16k.wav"
CAPTIONS_VTT = "captions.vtt"
CAPTIONS_SRT = "captions.srt"
REPORT_JSON = "speech.json"

SOURCE_TTS = "tts"
SOURCE_RECORDING = "recording"

__all__ = [
    "synthesize",
    "installed_voices",
    "espeak_speakers",
    "command_version",
    "make_cues",
    "split_sentences",
    "to_vtt",
    "to_srt",
    "SOURCE_TTS",
    "SOURCE_RECORDING",
]


def _raw_from_recording(job: JobSpec, raw: Path) -> dict:
    recording = job.audio_path
    if recording is None or not recording.is_file():
        raise InputFileError(
            f"job {job.job_id}: entry '{job.entry_id}' field 'audio.{job.language}' names "
            f"{recording}, which is not a readable file. Fix: correct the path or remove it to use TTS"
        )
    with atomic_path(raw) as tmp:
        audio.decode(recording, tmp, what=f"job {job.job_id} recording {recording.name}")
        audio.probe_audio(tmp)
    return {"source": SOURCE_RECORDING, "recording": str(recording)}


def _raw_from_tts(job: JobSpec, raw: Path, timeout_s: float) -> dict:
    result = tts.speak(job.answer, job.voice, raw, job_id=job.job_id, timeout_s=timeout_s)
    report = {
        "source": SOURCE_TTS,
        "engine": result.engine,
        "voice": job.voice.voice,
        "rate_wpm": job.voice.rate_wpm,
        "engine_failures": list(result.failures),
    }
    if job.voice.command is not None:
        report |= {"argv": list(job.voice.command.argv), "executable": str(job.voice.command.executable)}
    return report


def _master(raw: Path, work_dir: Path, target: loudness.LoudnessTarget, what: str) -> dict:
    """Steps 2-3: the normalised master and the 16 kHz model copy."""
    master = work_dir / MASTER_WAV
    with atomic_path(master) as tmp:
        result = loudness.normalize(raw, tmp, target, what=what)
    with atomic_path(work_dir / MODEL_WAV) as tmp:
        audio.to_model_rate(master, tmp, what=what)
        audio.probe_audio(tmp)
    return {
        "raw_loudness_lufs": result.source.integrated_lufs,
        "master_loudness_lufs": result.master.integrated_lufs,
        "master_true_peak_dbtp": result.master.true_peak_dbtp,
        "target_loudness_lufs": target.integrated_lufs,
        "limiter_gain_db": result.limiter_gain_db,
        "limiter_passes": result.limiter_passes,
    }


def synthesize(job: JobSpec, work_dir: Path, *, tts_timeout_s: float = 120) -> SpeechTrack:
    """The speech track for `job`, written into `work_dir` (created if missing)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    raw = work_dir / RAW_WAV
    if job.audio_path is not None:
        report = _raw_from_recording(job, raw)
    else:
        report = _raw_from_tts(job, raw, tts_timeout_s)
    target = loudness.LoudnessTarget(integrated_lufs=job.voice.loudness_lufs)
    report |= _master(raw, work_dir, target, what=f"job {job.job_id}")
    master = work_dir / MASTER_WAV
    duration_s = audio.probe_audio(master).duration_s
    cues = captions.make_cues(job.answer, duration_s)
    write_text_atomic(work_dir / CAPTIONS_VTT, to_vtt(cues))
    write_text_atomic(work_dir / CAPTIONS_SRT, to_srt(cues))
    write_json_atomic(work_dir / REPORT_JSON, {"job_id": job.job_id, "duration_s": duration_s, **report})
    return SpeechTrack(
        master_wav=master,
        model_wav=work_dir / MODEL_WAV,
        duration_s=duration_s,
        loudness_lufs=report["master_loudness_lufs"],
        cues=cues,
        captions_vtt=work_dir / CAPTIONS_VTT,
        captions_srt=work_dir / CAPTIONS_SRT,
        source=report["source"],
    )
