"""EBU R128 loudness normalisation: two-pass ffmpeg `loudnorm`, linear mode.

1. Pass 1 measures the input (loudnorm print_format=json).
2. loudnorm's linear mode (one gain for the whole clip, exact) only applies
   when that gain leaves the true peak under the ceiling. Synthetic speech
   often has too high a peak-to-loudness ratio for that (espeak-ng clips:
   17-18 dB, where -16 LUFS under -1.5 dBTP allows 14.5), and loudnorm then
   falls back to its dynamic mode, which on clips of a few seconds misses the
   target by up to 1.5 LU or, under 3 s, by 20 LU (all measured with ffmpeg
   5.1). So when linear mode would be refused, the input first goes through a
   true-peak limiter (alimiter at 4x oversampling) at the gain that brings it
   to the target; the gain is found by a few secant steps, since limiting
   eats some of the loudness it is given.
3. Pass 2 applies pass 1's measurements with linear=true (on the limited
   copy, if any): 48 kHz mono s16.
4. The written master is measured again; more than MAX_MISS_LU off target or
   over the peak ceiling is a ToolError, never a quietly wrong file.
argv builders, the JSON parser and the gain search step are pure. Knows
nothing about jobs, TTS or captions.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from avatar_batch.core import proc
from avatar_batch.core.errors import ToolError
from avatar_batch.core.fsio import temp_sibling
from avatar_batch.core.records import MASTER_SAMPLE_RATE_HZ

TRUE_PEAK_DBTP = -1.5
LOUDNESS_RANGE_LU = 11.0
FFMPEG_TIMEOUT_S = 300.0

# loudnorm limits true peak at 192 kHz; resampling to 48 kHz and rounding to
# 16 bits then lifts it by up to ~0.1 dB (measured -1.40 with TP=-1.5), so it
# aims this far under the ceiling.
PEAK_MARGIN_DB = 0.2
# The limiter sits this far under loudnorm's peak aim, so that the small
# gain left for pass 2 (at most LIMITER_TOLERANCE_LU) keeps linear mode.
LIMITER_HEADROOM_DB = 0.5
LIMITER_TOLERANCE_LU = 0.3
MAX_LIMITER_PASSES = 5
MAX_EXTRA_GAIN_DB = 20.0
LIMITER_OVERSAMPLE_HZ = 4 * MASTER_SAMPLE_RATE_HZ  # BS.1770 measures true peak at 4x
MAX_MISS_LU = 1.0
SILENCE_LUFS = -70.0  # R128's absolute gate: below it there is no speech to normalise


@dataclass(frozen=True)
class LoudnessTarget:
    """What the master must meet: integrated loudness and a true-peak ceiling."""

    integrated_lufs: float
    true_peak_dbtp: float = TRUE_PEAK_DBTP
    range_lu: float = LOUDNESS_RANGE_LU

    @property
    def aim_peak_dbtp(self) -> float:
        return self.true_peak_dbtp - PEAK_MARGIN_DB

    def filter_args(self) -> str:
        return f"I={self.integrated_lufs:.2f}:TP={self.aim_peak_dbtp:.2f}:LRA={self.range_lu:.1f}"


@dataclass(frozen=True)
class Measurement:
    """What loudnorm measured on its input (its `input_*` fields)."""

    integrated_lufs: float
    true_peak_dbtp: float
    range_lu: float
    threshold_lufs: float
    target_offset_lu: float


@dataclass(frozen=True)
class Normalized:
    source: Measurement  # the input, before anything
    master: Measurement  # the written master
    limiter_gain_db: float | None  # gain into the limiter; None when linear gain sufficed
    limiter_passes: int


def _ffmpeg_head() -> list[str]:
    return ["ffmpeg", "-nostdin", "-hide_banner", "-nostats"]


def measure_argv(src: Path, target: LoudnessTarget) -> list[str]:
    """Pass 1: decode, measure, write nothing. The JSON lands on stderr."""
    graph = f"loudnorm={target.filter_args()}:print_format=json"
    return [*_ffmpeg_head(), "-i", str(src), "-af", graph, "-f", "null", "-"]


def limit_argv(src: Path, out: Path, gain_db: float, limit_dbfs: float) -> list[str]:
    """Gain then a lookahead limiter at 4x the master rate, written as float so
    nothing clips before pass 2. latency=true keeps the audio in sync."""
    graph = (
        f"aresample={LIMITER_OVERSAMPLE_HZ},volume={gain_db:.3f}dB,"
        f"alimiter=limit={10 ** (limit_dbfs / 20):.5f}:attack=1:release=20:level=false:latency=true"
    )
    return [
        *_ffmpeg_head(), "-loglevel", "error", "-y", "-i", str(src), "-af", graph,
        "-ar", str(MASTER_SAMPLE_RATE_HZ), "-ac", "1", "-c:a", "pcm_f32le", "-f", "wav", str(out),
    ]  # fmt: skip


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def normalize_argv(src: Path, out: Path, target: LoudnessTarget, measured: Measurement) -> list[str]:
    """Pass 2: apply the measured values in linear mode, write 48 kHz mono s16 WAV."""
    # loudnorm rejects values outside these ranges; only near-silence gets
    # there, and `check_audible` refuses that first.
    applied = (
        f"measured_I={_clamp(measured.integrated_lufs, -99, 0):.2f}"
        f":measured_TP={_clamp(measured.true_peak_dbtp, -99, 99):.2f}"
        f":measured_LRA={_clamp(measured.range_lu, 0, 99):.2f}"
        f":measured_thresh={_clamp(measured.threshold_lufs, -99, 0):.2f}"
        f":offset={_clamp(measured.target_offset_lu, -99, 99):.2f}"
    )
    return [
        *_ffmpeg_head(), "-loglevel", "error", "-y", "-i", str(src),
        "-af", f"loudnorm={target.filter_args()}:{applied}:linear=true",
        "-ar", str(MASTER_SAMPLE_RATE_HZ), "-ac", "1", "-c:a", "pcm_s16le", "-f", "wav", str(out),
    ]  # fmt: skip


_JSON_BLOCK = re.compile(r"\{[^{}]*\}", re.DOTALL)


def parse_loudnorm_json(stderr_text: str) -> Measurement:
    """The last JSON object loudnorm printed on stderr. "-inf" parses as -inf."""
    blocks = _JSON_BLOCK.findall(stderr_text)
    if not blocks:
        raise ToolError(f"ffmpeg loudnorm printed no measurement: {proc.stderr_tail(stderr_text, 500)}")
    try:
        data = json.loads(blocks[-1])
        return Measurement(
            integrated_lufs=float(data["input_i"]),
            true_peak_dbtp=float(data["input_tp"]),
            range_lu=float(data["input_lra"]),
            threshold_lufs=float(data["input_thresh"]),
            target_offset_lu=float(data["target_offset"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ToolError(f"ffmpeg loudnorm measurement unreadable ({exc}): {blocks[-1][:500]}") from exc


def linear_fits(measured: Measurement, target: LoudnessTarget) -> bool:
    """Would one gain to the target keep the true peak under loudnorm's aim?"""
    gain_db = target.integrated_lufs - measured.integrated_lufs
    return measured.true_peak_dbtp + gain_db <= target.aim_peak_dbtp


def next_gain_db(tried: Sequence[tuple[float, float]], target_lufs: float) -> float:
    """The next limiter gain from (gain_db, loudness_lufs) tried so far: a
    secant step through the last two, or the miss added once at the start.
    Limiting makes loudness grow slower than gain, never backwards."""
    gain_db, lufs = tried[-1]
    if len(tried) == 1:
        return gain_db + (target_lufs - lufs)
    prev_gain_db, prev_lufs = tried[-2]
    slope = (lufs - prev_lufs) / (gain_db - prev_gain_db) if gain_db != prev_gain_db else 1.0
    slope = _clamp(slope, 0.05, 1.0)  # a flat or noisy step must not send the gain off
    return gain_db + (target_lufs - lufs) / slope


def measure(src: Path, target: LoudnessTarget, *, what: str) -> Measurement:
    done = proc.run(measure_argv(src, target), timeout_s=FFMPEG_TIMEOUT_S, what=f"ffmpeg loudness measure ({what})")
    return parse_loudnorm_json(done.stderr.decode("utf-8", "replace"))


def check_audible(measured: Measurement, src: Path, *, what: str) -> None:
    if not math.isfinite(measured.integrated_lufs) or measured.integrated_lufs < SILENCE_LUFS:
        raise ToolError(
            f"{what}: {src} is silent (integrated loudness {measured.integrated_lufs} LUFS); "
            "nothing to normalise. Fix: check the recording or the TTS voice"
        )


def _limit_to_target(src: Path, out: Path, source: Measurement, target: LoudnessTarget, what: str):
    """Step 2: write `out` = limit(src x gain) with its loudness within
    LIMITER_TOLERANCE_LU of the target (or the closest found). Returns
    (measurement of out, gain_db, passes)."""
    limit_dbfs = target.aim_peak_dbtp - LIMITER_HEADROOM_DB
    first_gain_db = target.integrated_lufs - source.integrated_lufs
    gain_db = first_gain_db
    tried: list[tuple[float, float]] = []
    best: tuple[float, Measurement, float] | None = None  # (miss, measurement, gain)
    for _ in range(MAX_LIMITER_PASSES):
        candidate = temp_sibling(out)
        try:
            proc.run(
                limit_argv(src, candidate, gain_db, limit_dbfs),
                timeout_s=FFMPEG_TIMEOUT_S,
                what=f"ffmpeg limiter ({what})",
            )
            measured = measure(candidate, target, what=f"{what} limited")
            miss = abs(measured.integrated_lufs - target.integrated_lufs)
            if best is None or miss < best[0]:
                candidate.replace(out)
                best = (miss, measured, gain_db)
        finally:
            candidate.unlink(missing_ok=True)
        tried.append((gain_db, measured.integrated_lufs))
        if miss <= LIMITER_TOLERANCE_LU:
            break
        gain_db = _clamp(next_gain_db(tried, target.integrated_lufs), first_gain_db, first_gain_db + MAX_EXTRA_GAIN_DB)
    assert best is not None  # the first pass either raised or set it
    return best[1], best[2], len(tried)


def check_master(master: Measurement, target: LoudnessTarget, path: Path, *, what: str) -> None:
    miss_lu = master.integrated_lufs - target.integrated_lufs
    if abs(miss_lu) > MAX_MISS_LU or master.true_peak_dbtp > target.true_peak_dbtp:
        raise ToolError(
            f"{what}: {path} measures {master.integrated_lufs} LUFS / {master.true_peak_dbtp} dBTP, "
            f"target {target.integrated_lufs} LUFS within {MAX_MISS_LU} LU, peak <= {target.true_peak_dbtp} dBTP"
        )


def normalize(src: Path, out: Path, target: LoudnessTarget, *, what: str) -> Normalized:
    """Write `out` (48 kHz mono s16 WAV) normalised to `target`; steps 1-4 above."""
    source = measure(src, target, what=what)
    check_audible(source, src, what=what)
    limiter_gain_db, limiter_passes = None, 0
    limited = temp_sibling(out)
    try:
        pass2_input, pass2_measured = src, source
        if not linear_fits(source, target):
            pass2_measured, limiter_gain_db, limiter_passes = _limit_to_target(src, limited, source, target, what)
            pass2_input = limited
        argv = normalize_argv(pass2_input, out, target, pass2_measured)
        proc.run(argv, timeout_s=FFMPEG_TIMEOUT_S, what=f"ffmpeg loudness normalise ({what})")
    finally:
        limited.unlink(missing_ok=True)
    master = measure(out, target, what=f"{what} master")
    check_master(master, target, out, what=what)
    return Normalized(source=source, master=master, limiter_gain_db=limiter_gain_db, limiter_passes=limiter_passes)
