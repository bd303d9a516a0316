"""Caption cues from an answer's text and its speech duration.

Pure functions, no I/O. There is no word alignment: each sentence becomes one
cue and the speech duration is shared out in proportion to how long each
sentence takes to say, estimated from its characters. This module knows
nothing about audio files or where captions are written.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

from avatar_batch.core.records import Cue

MIN_CUE_S = 0.5

# A sentence ends at Latin . ! ? followed by a space or the end of the line
# (so "3.5" and "example.com" stay whole), or at CJK 。！？ which are not
# followed by spaces. Closing quotes and brackets stay with their sentence.
_CLOSERS = "\"'\u201d\u2019)\\]\u300d\u300f\uff09"
_SENTENCE = re.compile(
    rf"""
    .*?                                   # shortest run of text
    (?: [.!?]+ [{_CLOSERS}]* (?=\s|$)     # Latin terminal, then space or end
      | [\u3002\uff01\uff1f]+ [{_CLOSERS}]*  # CJK terminal
      | $ )
    """,
    re.VERBOSE,
)

# Roughly 15 Latin characters are spoken per second at 160 wpm, and about
# 4-5 Han characters (one syllable each): one wide character ~ 3 narrow ones.
WIDE_CHAR_WEIGHT = 3.0


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`, punctuation kept, whitespace collapsed, empties dropped."""
    sentences: list[str] = []
    for line in text.splitlines():
        for match in _SENTENCE.finditer(line):
            sentence = " ".join(match.group(0).split())
            if sentence:
                sentences.append(sentence)
    return sentences


def speaking_weight(sentence: str) -> float:
    """How long a sentence takes to say, in 'narrow character' units."""
    weight = 0.0
    for char in sentence:
        wide = unicodedata.east_asian_width(char) in ("W", "F")
        letter = unicodedata.category(char)[0] in ("L", "N")
        weight += WIDE_CHAR_WEIGHT if wide and letter else 1.0
    return weight


def apportion(weights: Sequence[float], duration_s: float, min_span_s: float = MIN_CUE_S) -> list[float]:
    """Split `duration_s` in proportion to `weights`, no span below `min_span_s`.

    Spans that would be too short are pinned to the minimum and the rest is
    re-shared among the others, until none is short. When even equal spans
    would be under the minimum, spans are equal.
    """
    count = len(weights)
    if count == 0:
        return []
    if count * min_span_s >= duration_s:
        return [duration_s / count] * count
    pinned: set[int] = set()
    while True:
        free_s = duration_s - min_span_s * len(pinned)
        free_weight = sum(w for i, w in enumerate(weights) if i not in pinned)
        spans = [min_span_s if i in pinned else free_s * w / free_weight for i, w in enumerate(weights)]
        short = {i for i, span in enumerate(spans) if i not in pinned and span < min_span_s}
        if not short:
            return spans
        pinned |= short


def make_cues(text: str, duration_s: float, min_cue_s: float = MIN_CUE_S) -> tuple[Cue, ...]:
    """One cue per sentence, back to back from 0 to `duration_s`.

    Boundaries are rounded to milliseconds (what the caption formats hold), so
    each cue ends exactly where the next starts; the last ends at `duration_s`.
    """
    sentences = split_sentences(text)
    spans = apportion([speaking_weight(s) for s in sentences], duration_s, min_cue_s)
    cues: list[Cue] = []
    start_s = 0.0
    elapsed_s = 0.0
    for index, (sentence, span) in enumerate(zip(sentences, spans)):
        elapsed_s += span
        end_s = duration_s if index == len(sentences) - 1 else round(elapsed_s, 3)
        cues.append(Cue(start_s=start_s, end_s=end_s, text=sentence))
        start_s = end_s
    return tuple(cues)


def format_timestamp(seconds: float, decimal_mark: str) -> str:
    """00:01:02.345 (VTT, mark '.') or 00:01:02,345 (SRT, mark ',')."""
    total_ms = max(0, round(seconds * 1000))
    hours, rest_ms = divmod(total_ms, 3_600_000)
    minutes, rest_ms = divmod(rest_ms, 60_000)
    secs, millis = divmod(rest_ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_mark}{millis:03d}"


def escape_vtt(text: str) -> str:
    """Cue text as WebVTT text: markup in an answer must show, not style."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _blocks(cues: Iterable[Cue], decimal_mark: str, escape) -> list[str]:
    blocks = []
    for number, cue in enumerate(cues, start=1):
        start = format_timestamp(cue.start_s, decimal_mark)
        end = format_timestamp(cue.end_s, decimal_mark)
        blocks.append(f"{number}\n{start} --> {end}\n{escape(cue.text)}\n")
    return blocks


def to_vtt(cues: Iterable[Cue]) -> str:
    return "\n".join(["WEBVTT\n", *_blocks(cues, ".", escape_vtt)])


_SRT_ARROW = re.compile(r"-{2,}>")


def escape_srt(text: str) -> str:
    """SRT has no escapes and players show entities literally, so the text goes
    in as written, except an arrow: a cue line like "00:00:01,000 --> ..."
    would be read as a timing line (ffmpeg then drops the cue), so every
    "-->" (or longer) becomes "->"."""
    return _SRT_ARROW.sub("->", text)


def to_srt(cues: Iterable[Cue]) -> str:
    # A cue holds a single line (sentences never span newlines), so no blank
    # line can end a cue early.
    return "\n".join(_blocks(cues, ",", escape_srt))
