"""Hostile catalogue text: markup, entities, quotes, comment and caption
arrows, shell syntax. It is spoken and rendered like any answer, shown as
text in index.html, captions and search, and never reaches a command line."""

from __future__ import annotations

import ast
import json
import re
import sqlite3
import subprocess

import pytest
from typer.testing import CliRunner

from avatar_batch.cli import app
from avatar_batch.library import search
from avatar_batch.library.html_page import load_template
from tests.hardening.projects import REPO, ffprobe_ok, make_project, manifest_items, smoke_data

SRC = REPO / "src" / "avatar_batch"
ANSWER = (
    "<script>alert(1)</script> Fish & chips, \"quoted\" and 'single'. </script><!-- x --> done.\n"
    "-->\n"
    "00:00:00.000 --> 00:00:09.000\n"
    "'; rm -rf / #"
)
QUESTION = "Is </script><img src=x onerror=alert(2)> safe & sound?"
DEPARTMENT = '<b>front</b> & "desk"'
SENTENCES = 5  # ANSWER's sentences, one caption cue each
MARKERS = ("alert(", "rm -rf", "chips", "onerror")
FILTER_FLAGS = ("-vf", "-af", "-filter_complex", "-lavfi", "-filter:v", "-filter:a", "-filter")
SAFE_FILTER = re.compile(r"^[A-Za-z0-9_=:.,+\-]+$")  # names, numbers, separators: no room for text
FILE_READING_FILTERS = ("drawtext", "subtitles", "ass", "movie", "amovie", "sendcmd", "asendcmd")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Render the hostile entry in-process, recording every program started."""
    root = tmp_path_factory.mktemp("hostile")
    entry = {"id": "hostile", "department": DEPARTMENT, "question": QUESTION, "answer": ANSWER}
    project = make_project(root / "project", smoke_data(entries=[entry]))
    library = root / "library"
    started: list[tuple[object, object]] = []
    real_popen = subprocess.Popen

    class RecordingPopen(real_popen):  # the one door every program goes through
        def __init__(self, args, *rest, **kwargs):
            started.append((args, kwargs.get("shell", False)))
            super().__init__(args, *rest, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess, "Popen", RecordingPopen)
        result = CliRunner().invoke(app, ["render", str(project.catalogue), "--plain", "--library", str(library)])
    assert result.exit_code == 0, result.output
    (item,) = manifest_items(library)
    return library, item, started


def test_it_renders_like_any_answer(rendered):
    library, item, _ = rendered
    assert item["status"] == "completed"
    assert item["answer"] == ANSWER and item["question"] == QUESTION and item["department"] == DEPARTMENT
    assert ffprobe_ok(library / item["video"]) and ffprobe_ok(library / item["poster"])


def test_text_never_reaches_a_command_line(rendered):
    _, _, started = rendered
    assert started, "no program was recorded"
    for args, shell in started:
        assert shell is False and isinstance(args, (list, tuple)), args
        for arg in map(str, args):
            assert not any(marker in arg for marker in MARKERS), args
    filters = [str(args[i + 1]) for args, _ in started for i, arg in enumerate(args[:-1]) if arg in FILTER_FLAGS]
    assert filters, "the loudness pass runs filter graphs; none was seen"
    for graph in filters:
        assert SAFE_FILTER.match(graph), graph
        names = {part.split("=", 1)[0] for part in graph.split(",")}
        assert not names & set(FILE_READING_FILTERS), graph


def test_index_html_carries_text_only_as_data(rendered):
    library, item, _ = rendered
    page = (library / "index.html").read_text(encoding="utf-8")
    template = load_template()
    for token in ("<script", "</script", "<!--", "-->", "<img", "<b>"):
        assert page.count(token) == template.count(token), token
    block = re.search(r'<script type="application/json" id="library-data">(.*?)</script>', page, re.S).group(1)
    (row,) = json.loads(block)["items"]
    assert (row["answer"], row["question"], row["department"]) == (ANSWER, QUESTION, DEPARTMENT)


TIMING_VTT = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} --> \d\d:\d\d:\d\d\.\d{3}$")
TIMING_SRT = re.compile(r"^\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}$")


@pytest.mark.parametrize("key, timing", [("captions_vtt", TIMING_VTT), ("captions_srt", TIMING_SRT)])
def test_captions_keep_one_cue_per_sentence(rendered, key, timing):
    library, item, _ = rendered
    path = library / item[key]
    lines = path.read_text(encoding="utf-8").splitlines()
    arrows = [line for line in lines if "-->" in line]
    assert len(arrows) == SENTENCES and all(timing.match(line) for line in arrows), arrows
    # ffmpeg, like a player, must find every cue: an arrow in the text would cost one.
    done = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "ass", "-"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    dialogues = [line for line in done.stdout.splitlines() if line.startswith("Dialogue:")]
    assert len(dialogues) == SENTENCES, done.stdout


def test_vtt_text_is_escaped(rendered):
    library, item, _ = rendered
    text = (library / item["captions_vtt"]).read_text(encoding="utf-8")
    cue_lines = [line for line in text.splitlines()[1:] if line and not line.isdigit() and not TIMING_VTT.match(line)]
    assert len(cue_lines) == SENTENCES
    for line in cue_lines:
        assert "<" not in line and ">" not in line, line
        assert re.fullmatch(r"(?:[^&]|&(?:amp|lt|gt);)*", line), line
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Fish &amp; chips" in text


def test_sqlite_stores_the_exact_text_and_searches_it_safely(rendered):
    library, item, _ = rendered
    db_path = library / "library.sqlite"
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT answer, department FROM items").fetchall() == [(ANSWER, DEPARTMENT)]
    job = [item["job_id"]]
    for query in ("<script>alert(1)</script>", '"quoted"', "'single'", "-->", "&", "rm -rf", "</script><!--"):
        assert search(db_path, query) == job, query
    for query in ("'; DROP TABLE items; --", "NEAR(a b) OR *", "%", "_", "\\", 'quoted" OR "x'):
        assert search(db_path, query) == [], query
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT count(*) FROM items").fetchone() == (1,)


# --- the source itself ------------------------------------------------------------------


def python_files():
    return sorted(SRC.rglob("*.py"))


def test_no_shell_and_one_door_for_programs():
    offenders = []
    for path in python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            for keyword in node.keywords:
                if keyword.arg == "shell" and not (
                    isinstance(keyword.value, ast.Constant) and keyword.value.value is False
                ):
                    offenders.append(f"{path}:{node.lineno}: shell=")
            func = node.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                call = f"{func.value.id}.{func.attr}"
                spawns = call in ("os.system", "os.popen") or call.startswith(("os.exec", "os.spawn"))
                spawns |= func.value.id == "subprocess" and func.attr in (
                    "run",
                    "Popen",
                    "call",
                    "check_call",
                    "check_output",
                    "getoutput",
                )
                if spawns and path.name != "proc.py":
                    offenders.append(f"{path}:{node.lineno}: {call}")
    assert not offenders, "\n".join(offenders)


TEXT_NAMES = re.compile(r"text|answer|question|prompt|caption|cue|title|department|entry|label|voice", re.I)


def names_in(node: ast.AST) -> set[str]:
    found = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            found.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            found.add(sub.attr)
    return found


def test_filter_graphs_are_built_from_numbers_not_text():
    """Every argv list naming a filter flag: the graph after it (and what that
    name was assigned from, in the same function) uses no text-like value."""
    offenders, seen = [], 0
    for path in python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
            assigned: dict[str, set[str]] = {}
            for node in ast.walk(function):
                if isinstance(node, ast.Assign):
                    for target in node.targets:
                        if isinstance(target, ast.Name):
                            assigned.setdefault(target.id, set()).update(names_in(node.value))
            for node in ast.walk(function):
                if not isinstance(node, (ast.List, ast.Tuple)):
                    continue
                values = node.elts
                for flag, graph in zip(values, values[1:]):
                    if isinstance(flag, ast.Constant) and flag.value in FILTER_FLAGS:
                        seen += 1
                        used = names_in(graph)
                        for name in list(used):
                            used |= assigned.get(name, set())
                        bad = sorted(name for name in used if TEXT_NAMES.search(name))
                        if bad:
                            offenders.append(f"{path}:{graph.lineno}: filter graph uses {bad}")
    assert seen, "no filter flag found: has the argv style changed?"
    assert not offenders, "\n".join(offenders)
