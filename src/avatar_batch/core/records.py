"""Frozen records passed between stages.

Each stage returns one of these and takes others as input; none holds behaviour
beyond small derived properties. Every default lives here once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

# Live Avatar generates at 25 fps (docs/model.md §0.1); every renderer follows it so a
# still fallback and a model render are interchangeable in the library.
VIDEO_FPS = 25
MODEL_SAMPLE_RATE_HZ = 16_000
MASTER_SAMPLE_RATE_HZ = 48_000
DEFAULT_LOUDNESS_LUFS = -16.0
DEFAULT_TTS_RATE_WPM = 160
# The only placeholders a command voice's argv may hold; nothing else in it is
# ever substituted or interpreted (there is no shell).
TEXT_FILE_PLACEHOLDER = "{text_file}"
OUT_WAV_PLACEHOLDER = "{out_wav}"


# --- presets -------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    """A named render quality. `size` is an area written as the user writes it ("W*H")."""

    name: str
    size: str
    sample_steps: int
    frames_per_clip: int = 48


PRESETS: Mapping[str, Preset] = MappingProxyType(
    {
        "quick": Preset("quick", "384*256", 3),
        "standard": Preset("standard", "688*368", 4),
        "high": Preset("high", "704*384", 4),
    }
)


# --- the catalogue, as validated data ------------------------------------------


@dataclass(frozen=True)
class CommandVoice:
    """A TTS program run once per answer, from an argv template (never a shell).

    The program runs in the catalogue's folder, so a relative path among its
    arguments means what every other catalogue path means; no argument is
    rewritten, because a path cannot be told from a value (`--speaker 0`).
    """

    argv: tuple[str, ...]  # as written, with {text_file} and {out_wav}
    executable: Path  # argv[0] found on PATH, or its path (absolute or in the project)
    cwd: Path  # the catalogue's folder
    # arguments (as written) that name files in the project, e.g. a voice model:
    # their bytes enter the job id, so a new model re-renders
    files: Mapping[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class Persona:
    """Who speaks: a portrait, a prompt template and a TTS voice per language."""

    id: str
    image_path: Path
    prompt_path: Path
    prompt_template: str
    voices: Mapping[str, str | CommandVoice]  # language -> espeak-ng voice id, or a command voice
    rate_wpm: int = DEFAULT_TTS_RATE_WPM


@dataclass(frozen=True)
class Entry:
    """One FAQ answer. Texts are keyed by language code."""

    id: str
    persona: str
    department: str
    question: Mapping[str, str]
    answer: Mapping[str, str]
    languages: tuple[str, ...]
    audio: Mapping[str, Path] = field(default_factory=dict)  # language -> recording
    preset: str | None = None
    size: str | None = None
    sink_refresh: bool | None = None  # None: the run's setting
    fallback_to_still: bool = True
    line: int | None = None  # line in the catalogue file, for messages


@dataclass(frozen=True)
class CatalogueDefaults:
    preset: str = "standard"
    renderer: str = "still"
    languages: tuple[str, ...] = ("en",)
    persona: str | None = None
    loudness_lufs: float = DEFAULT_LOUDNESS_LUFS
    seed: int = 420


@dataclass(frozen=True)
class Catalogue:
    path: Path
    version: int
    library_dir: Path  # resolved against the catalogue's folder
    defaults: CatalogueDefaults
    personas: Mapping[str, Persona]
    entries: tuple[Entry, ...]
    warnings: tuple[str, ...] = ()

    @property
    def root(self) -> Path:
        return self.path.parent


# --- settings and jobs ----------------------------------------------------------


@dataclass(frozen=True)
class RenderSettings:
    """Everything that shapes the pixels besides the inputs. Part of the job id."""

    renderer: str = "still"
    preset: str = "standard"
    size: str = "688*368"
    sample_steps: int = 4
    frames_per_clip: int = 48
    seed: int = 420
    num_clip: int | None = None
    offload: str = "auto"  # auto | none | model | blocks (where weights and caches live)
    precision: str = "bf16"  # bf16 | fp8: arithmetic of the DiT linears
    weights_dir: str | None = None
    gpu_memory_gib: float | None = None  # budget on the GPU; None = the whole card
    weight_format: str = "auto"  # auto | bf16 | fp8 | int8 | int4: storage of the DiT linear weights
    kv_format: str = "bf16"  # bf16 | fp8: storage of the per-step KV caches
    sink_refresh: bool = False  # re-seed the sink from clip 0's output (long answers)
    compile_cache_dir: str | None = None  # compiled DiT kernels kept across runs; None = off
    cuda_graphs: bool = False  # liveavatar: replay each wave's layer pass as a CUDA graph (same pixels)

    @property
    def resolved_weight_format(self) -> str:
        """`auto` stores what the arithmetic uses: fp8 under `--precision fp8`, else bf16."""
        if self.weight_format != "auto":
            return self.weight_format
        return "fp8" if self.precision == "fp8" else "bf16"

    def hashed_fields(self) -> dict[str, Any]:
        """Fields that change the output. Offload, the GPU budget and the weights
        location, the compile cache and CUDA graphs do not; the model identity (hash of the checkpoint) stands in for
        the location. The storage formats change pixels, but enter only when they
        differ from their defaults, and `sink_refresh` only when on, so libraries
        rendered before they existed keep their job ids."""
        data = asdict(self)
        for name in (
            "offload",
            "weights_dir",
            "gpu_memory_gib",
            "weight_format",
            "kv_format",
            "compile_cache_dir",
            "cuda_graphs",
        ):
            data.pop(name)
        if not self.sink_refresh:
            data.pop("sink_refresh")
        if self.resolved_weight_format != RenderSettings(precision=self.precision).resolved_weight_format:
            data["weight_format"] = self.resolved_weight_format
        if self.kv_format != RenderSettings.kv_format:
            data["kv_format"] = self.kv_format
        return data


@dataclass(frozen=True)
class VoiceSettings:
    engine: str = "pyttsx3"  # pyttsx3 | espeak-ng | command
    voice: str = "en-us"  # the espeak-ng voice id; for a command voice, its program's name
    rate_wpm: int = DEFAULT_TTS_RATE_WPM
    loudness_lufs: float = DEFAULT_LOUDNESS_LUFS
    command: CommandVoice | None = None  # set exactly when engine == "command"


@dataclass(frozen=True)
class JobSpec:
    """One (entry x language) render, with everything needed to do it."""

    job_id: str
    entry_id: str
    language: str
    persona: str
    department: str
    question: str
    answer: str
    image_path: Path
    prompt: str
    voice: VoiceSettings
    audio_path: Path | None
    settings: RenderSettings
    fallback_to_still: bool = True

    @property
    def key(self) -> tuple[str, str]:
        """A job's slot in the library: one current version per (entry, language)."""
        return (self.entry_id, self.language)


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str


@dataclass(frozen=True)
class SpeechTrack:
    """Speech for one job: a loudness-normalised master for the mux and a
    16 kHz mono copy for the model, plus one caption cue per sentence."""

    master_wav: Path
    model_wav: Path
    duration_s: float
    loudness_lufs: float
    cues: tuple[Cue, ...]
    captions_vtt: Path
    captions_srt: Path
    source: str  # "tts" | "recording"


@dataclass(frozen=True)
class RenderRequest:
    job_id: str
    image_path: Path
    prompt: str
    speech: SpeechTrack
    settings: RenderSettings


@dataclass(frozen=True)
class VideoGeometry:
    width_px: int
    height_px: int
    fps: int
    num_frames: int

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps


@dataclass(frozen=True)
class MuxedVideo:
    """A finished, probed MP4 with its poster, in a staging folder."""

    video_path: Path
    poster_path: Path
    duration_s: float
    width_px: int
    height_px: int
    fps: int
    num_frames: int
    size_bytes: int


@dataclass(frozen=True)
class LibraryItem:
    """One manifest row. Paths are relative to the library root."""

    job_id: str
    entry_id: str
    language: str
    persona: str
    department: str
    question: str
    answer: str
    status: str  # completed | failed | fallback | retired
    failure: str | None = None
    video: str | None = None
    poster: str | None = None
    captions_vtt: str | None = None
    captions_srt: str | None = None
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    fps: int | None = None
    render_s: float | None = None
    renderer: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    loudness_lufs: float | None = None
    telemetry: Mapping[str, Any] = field(default_factory=dict)
    created_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["settings"] = dict(self.settings)
        data["telemetry"] = dict(self.telemetry)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LibraryItem:
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["settings"] = dict(kwargs.get("settings") or {})
        kwargs["telemetry"] = dict(kwargs.get("telemetry") or {})
        return cls(**kwargs)


ITEM_STATUSES = ("completed", "failed", "fallback", "retired")


@dataclass(frozen=True)
class WorkerSettings:
    """How a run spreads its jobs; never part of a job id (same library
    whatever the parallelism). `gpus` holds CUDA device ids as the driver sees
    them; () means a CPU machine. `workers` is None under Ray until the
    cluster says how many GPUs it has."""

    executor: str = "local"  # local | ray
    gpus: tuple[str, ...] = ()
    workers: int | None = 1
    ray_address: str | None = None
    in_process: bool = True  # one local worker on every visible device: today's single-process path

    def device_of(self, worker_index: int) -> str | None:
        """The device a local worker gets: GPUs dealt round-robin (two workers
        may share one GPU), None on a CPU machine."""
        return self.gpus[worker_index % len(self.gpus)] if self.gpus else None
