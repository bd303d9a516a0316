"""Captions: sentence split, timing, golden VTT/SRT, markup escaping."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avatar_batch.core.records import Cue
from avatar_batch.speech.captions import (
    MIN_CUE_S,
    apportion,
    escape_vtt,
    format_timestamp,
    make_cues,
    speaking_weight,
    split_sentences,
    to_srt,
    to_vtt,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Hello. How are you? Fine!", ["Hello.", "How are you?", "Fine!"]),
        ("It costs 3.5 euros. See example.com now.", ["It costs 3.5 euros.", "See example.com now."]),
        ("Wait... what?! Ok", ["Wait...", "what?!", "Ok"]),
        ('He said "stop." Then left.', ['He said "stop."', "Then left."]),
        ("你好。欢迎光临！有什么问题？", ["你好。", "欢迎光临！", "有什么问题？"]),
        ("First line\nsecond line.\n\n  third  ", ["First line", "second line.", "third"]),
        ("Mixed 中文。And English.", ["Mixed 中文。", "And English."]),
        ("  spaced   out   words.  ", ["spaced out words."]),
        ("", []),
        (" \n \n", []),
    ],
)
def test_split_sentences(text, expected):
    assert split_sentences(text) == expected


def test_wide_characters_weigh_more_than_latin_letters():
    assert speaking_weight("abc") == 3
    assert speaking_weight("你好") == 6
    # wide punctuation is a pause, not a syllable
    assert speaking_weight("。") == 1


def test_apportion_is_proportional_and_sums_to_duration():
    spans = apportion([1, 3], 8.0)
    assert spans == pytest.approx([2.0, 6.0])


def test_apportion_lifts_short_spans_to_the_minimum():
    spans = apportion([1, 100, 100], 4.0)
    assert spans[0] == pytest.approx(MIN_CUE_S)
    assert spans[1] == pytest.approx(1.75) and spans[2] == pytest.approx(1.75)
    assert sum(spans) == pytest.approx(4.0)


def test_apportion_splits_equally_when_minimum_cannot_be_met():
    assert apportion([1, 5, 9], 1.2) == pytest.approx([0.4, 0.4, 0.4])


@settings(max_examples=200, deadline=None)
@given(
    weights=st.lists(st.floats(min_value=0.5, max_value=500), min_size=1, max_size=30),
    duration_s=st.floats(min_value=0.1, max_value=600),
)
def test_apportion_invariants(weights, duration_s):
    spans = apportion(weights, duration_s)
    assert sum(spans) == pytest.approx(duration_s)
    if len(weights) * MIN_CUE_S < duration_s:
        assert min(spans) >= MIN_CUE_S - 1e-9


def test_make_cues_are_back_to_back_and_end_at_duration():
    cues = make_cues("Short. A much longer sentence follows here. End.", 5.0)
    assert [c.text for c in cues] == ["Short.", "A much longer sentence follows here.", "End."]
    assert cues[0].start_s == 0.0
    assert cues[-1].end_s == 5.0
    for before, after in zip(cues, cues[1:]):
        assert before.end_s == after.start_s
    assert all(c.end_s - c.start_s >= MIN_CUE_S - 0.001 for c in cues)
    assert cues[1].end_s - cues[1].start_s > 3 * (cues[0].end_s - cues[0].start_s)


def test_make_cues_of_empty_text_is_empty():
    assert make_cues("   ", 3.0) == ()


def test_format_timestamp():
    assert format_timestamp(0, ".") == "00:00:00.000"
    assert format_timestamp(3723.4567, ",") == "01:02:03,457"
    assert format_timestamp(59.9996, ".") == "00:01:00.000"


CUES = (
    Cue(0.0, 1.25, "Hello."),
    Cue(1.25, 3.5, "Use <b>bold</b> & more > less."),
    Cue(3.5, 61.0, "再见！"),
)

GOLDEN_VTT = """WEBVTT

1
00:00:00.000 --> 00:00:01.250
Hello.

2
00:00:01.250 --> 00:00:03.500
Use &lt;b&gt;bold&lt;/b&gt; &amp; more &gt; less.

3
00:00:03.500 --> 00:01:01.000
再见！
"""

GOLDEN_SRT = """1
00:00:00,000 --> 00:00:01,250
Hello.

2
00:00:01,250 --> 00:00:03,500
Use <b>bold</b> & more > less.

3
00:00:03,500 --> 00:01:01,000
再见！
"""


def test_vtt_golden():
    assert to_vtt(CUES) == GOLDEN_VTT


def test_srt_golden():
    assert to_srt(CUES) == GOLDEN_SRT


def test_vtt_of_no_cues_is_just_the_header():
    assert to_vtt(()) == "WEBVTT\n"


def test_markup_cannot_inject_vtt_tags_or_timings():
    hostile = "<c.evil>x</c> <script>alert(1)</script> --> 00:00:09.000 &amp;"
    text = to_vtt(make_cues(hostile, 2.0))
    body = text.split("\n", 4)[4]  # after header, blank, id, timing line
    assert "<" not in body and ">" not in body
    assert "&amp;amp;" in body  # an entity in the answer is shown, not decoded
    assert text.count("-->") == 1


def test_escape_vtt_escapes_ampersand_first():
    assert escape_vtt("a & <b>") == "a &amp; &lt;b&gt;"
