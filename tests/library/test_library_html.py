"""index.html: golden page for a fixed manifest, and catalogue text that
cannot escape into markup or script."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from avatar_batch.library import Library
from avatar_batch.library.html_page import load_template, page_data, render_page, script_safe_json
from avatar_batch.library.manifest import write_manifest
from tests.library.library_fixtures import VTT_TEXT, make_item

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "library" / "index.html"
ATTACK = "<script>alert(1)</script>"


def folder_paths(job_id: str, entry_id: str, language: str) -> dict[str, str]:
    base = f"videos/{entry_id}/{language}/{job_id}"
    return {
        "video": f"{base}/video.mp4",
        "poster": f"{base}/poster.jpg",
        "captions_vtt": f"{base}/captions.vtt",
        "captions_srt": f"{base}/captions.srt",
    }


def two_items():
    return [
        make_item(
            "1" * 16,
            entry_id="hours",
            question="When do you open?",
            answer="We open at nine & close at five.",
            **folder_paths("1" * 16, "hours", "en"),
        ),
        make_item(
            "2" * 16,
            entry_id="hours",
            language="zh",
            department="前台",
            question="你们几点开门？",
            answer="我们九点开门。",
            status="fallback",
            **folder_paths("2" * 16, "hours", "zh"),
        ),
        make_item("3" * 16, entry_id="gone", status="retired", **folder_paths("3" * 16, "gone", "en")),
        make_item("4" * 16, entry_id="broken", status="failed"),
    ]


def normalised(html: str) -> str:
    return re.sub(r'"generated_at":"[^"]*"', '"generated_at":"<time>"', html)


def build_library(root: Path, items) -> Library:
    library = Library(root)  # real clock: the golden comparison normalises it
    write_manifest(library.manifest_path, items, "2025-01-02T03:04:05Z")
    for item in items:
        if item.captions_vtt:
            vtt = root / item.captions_vtt
            vtt.parent.mkdir(parents=True, exist_ok=True)
            vtt.write_text(VTT_TEXT, encoding="utf-8")
    library.rebuild()
    return library


def embedded_data(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="library-data">(.*?)</script>', html, re.S)
    assert match, "library-data block missing"
    return json.loads(match.group(1))


def test_index_html_matches_golden(tmp_path: Path):
    library = build_library(tmp_path / "output", two_items())
    html = library.html_path.read_text(encoding="utf-8")
    assert normalised(html) == GOLDEN.read_text(encoding="utf-8")


def test_page_lists_only_playable_items_with_their_captions(tmp_path: Path):
    library = build_library(tmp_path / "output", two_items())
    data = embedded_data(library.html_path.read_text(encoding="utf-8"))
    assert [row["job_id"] for row in data["items"]] == ["1" * 16, "2" * 16]
    assert data["items"][0]["vtt"] == VTT_TEXT
    assert data["items"][1]["department"] == "前台"


def test_catalogue_text_cannot_break_out_of_the_data_block():
    item = make_item(
        "1" * 16, question=f"Q {ATTACK}", answer=f"A </script><!-- {ATTACK} & more", video="videos/hours/en/1/video.mp4"
    )
    html = render_page([item], "t", {item.job_id: f"WEBVTT\n\n00:00.000 --> 00:01.000\n{ATTACK}\n"})
    assert ATTACK not in html and "<!--" not in html
    assert html.count("</script>") == load_template().count("</script>")
    data = embedded_data(html)
    assert data["items"][0]["answer"] == f"A </script><!-- {ATTACK} & more"  # text survives intact


def test_script_safe_json_escapes_markup_characters():
    assert script_safe_json({"a": "<b>&</b>"}) == '{"a":"\\u003cb\\u003e\\u0026\\u003c/b\\u003e"}'


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_template_is_accessible_static_markup():
    template = load_template()
    parser = _Collector()
    parser.feed(template)
    tags = dict(parser.tags)
    assert tags["html"]["lang"] == "en"
    assert {"charset": "utf-8"} in [attrs for tag, attrs in parser.tags if tag == "meta"]
    assert tags["video"] == {"id": "video", "controls": None, "preload": "metadata"}
    labelled = {attrs["for"] for tag, attrs in parser.tags if tag == "label"}
    assert labelled == {"search", "department", "language"}
    # Catalogue text reaches the DOM only as text.
    assert "innerHTML" not in template and "insertAdjacentHTML" not in template
    assert "document.write" not in template
    for needed in ('"track"', 'kind = "captions"', "srclang", "createObjectURL", 'protocol === "file:"'):
        assert needed in template
    assert "<link" not in template and 'src="http' not in template  # works offline from disk


def test_page_data_orders_by_department_then_entry():
    items = [
        make_item("1" * 16, entry_id="b", department="Z"),
        make_item("2" * 16, entry_id="a", department="Z"),
        make_item("3" * 16, entry_id="c", department="A"),
    ]
    assert [row["entry_id"] for row in page_data(items, "t", {})["items"]] == ["c", "a", "b"]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize(
    "protocol, track_src",
    [
        ("file:", "blob:1"),
        ("http:", "videos/hours/zh/2222222222222222/captions.vtt"),
    ],
)
def test_page_script_runs_filters_and_plays(tmp_path: Path, protocol: str, track_src: str):
    items = two_items()
    items[1] = replace(items[1], entry_id="hours#2", **folder_paths("2" * 16, "hours#2", "zh"))
    library = build_library(tmp_path / "output", items)
    done = subprocess.run(
        ["node", str(Path(__file__).with_name("html_dom_stub.js")), str(library.html_path), protocol],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    shown = json.loads(done.stdout)
    assert shown["summary"] == "2 of 2 answers" and shown["options"] == ["Front desk", "前台"]
    base = "videos/hours%232/zh/2222222222222222"
    assert shown["played"] == {
        "src": f"{base}/video.mp4",
        "poster": f"{base}/poster.jpg",
        "track": ["captions", "zh", track_src.replace("videos/hours/zh", "videos/hours%232/zh"), True, "showing"],
        "heading": "你们几点开门？",
        "lang": "zh",
        "current": "true",
        "hash": "#entry=hours%232&lang=zh",
        "link": "#entry=hours%232&lang=zh",
        "duration": "0:01",
    }
    assert shown["rows"] == [
        ["videos/hours/en/1111111111111111/poster.jpg", "Front desk \u00b7 en \u00b7 0:01"],
        [f"{base}/poster.jpg", "前台 \u00b7 zh \u00b7 0:01"],
    ]
    assert shown["opened"] == {"heading": "", "hash": ""}  # no link: nothing opens by itself
    assert shown["afterHashChange"] == {"heading": "When do you open?", "current": "true"}
    assert shown["afterSearch"] == "1 of 2 answers" and shown["afterLanguage"] == "1 of 2 answers"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize(
    "link, heading",
    [
        ("#entry=hours%232&lang=zh", "你们几点开门？"),
        ("#entry=hours", "When do you open?"),  # no language: the entry's first answer
        ("#entry=nothing&lang=en", "This link names an answer that is not in the library"),
    ],
)
def test_a_link_opens_its_answer_directly(tmp_path: Path, link: str, heading: str):
    items = two_items()
    items[1] = replace(items[1], entry_id="hours#2", **folder_paths("2" * 16, "hours#2", "zh"))
    library = build_library(tmp_path / "output", items)
    done = subprocess.run(
        ["node", str(Path(__file__).with_name("html_dom_stub.js")), str(library.html_path), "file:", link],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(done.stdout)["opened"]["heading"] == heading
