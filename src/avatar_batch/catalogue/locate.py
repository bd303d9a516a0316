"""Turn a position in the parsed catalogue into a located `Problem`.

A position is the path of a value, e.g. `("entries", 3, "question", "zh")`.
The locator knows the file name, the line of every path (from `yaml_lines`)
and the raw data, so a problem about entry number 3 can name that entry's id
and the line it sits on. It knows nothing about which problems exist.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from avatar_batch.core.errors import Problem

MAX_VALUE_CHARS = 80


class Locator:
    def __init__(self, file: str, lines: Mapping[tuple, int], data: Any):
        self.file = file
        self.lines = lines
        self.data = data

    def problem(
        self,
        loc: tuple,
        message: str,
        *,
        value: Any = None,
        fix: str | None = None,
        severity: str = "error",
        line: int | None = None,
    ) -> Problem:
        return Problem(
            file=self.file,
            message=message,
            line=line or self.line(loc),
            entry=self.entry_id(loc),
            field=field_name(loc),
            value=None if value is None else short_text(value),
            fix=fix,
            severity=severity,
        )

    def line(self, loc: tuple) -> int | None:
        """Line of `loc`, or of its nearest ancestor that has one (a missing
        key has no line of its own; its mapping does)."""
        for end in range(len(loc), 0, -1):
            line = self.lines.get(tuple(loc[:end]))
            if line is not None:
                return line
        return None

    def entry_id(self, loc: tuple) -> str | None:
        """The id written in the entry `loc` points into, if it has a usable one."""
        if len(loc) < 2 or loc[0] != "entries" or not isinstance(loc[1], int):
            return None
        entries = self.data.get("entries") if isinstance(self.data, dict) else None
        if not isinstance(entries, list) or not 0 <= loc[1] < len(entries):
            return None
        entry = entries[loc[1]]
        entry_id = entry.get("id") if isinstance(entry, dict) else None
        return entry_id if isinstance(entry_id, str) and entry_id.strip() else f"#{loc[1] + 1}"


def field_name(loc: tuple) -> str | None:
    """Dotted field name of `loc`; inside an entry, relative to the entry
    (the entry itself is named separately)."""
    parts = loc[2:] if len(loc) >= 2 and loc[0] == "entries" and isinstance(loc[1], int) else loc
    return ".".join(str(part) for part in parts) or None


def short_text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return f"a {type(value).__name__}"
    text = str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def suggest(word: Any, known: Iterable[str], kind: str = "key") -> str:
    """A fix for an unknown name: the closest known one, else the full list."""
    known = sorted(str(name) for name in known)
    close = difflib.get_close_matches(str(word), known, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return f"use one of the known {kind}s: {', '.join(known)}" if known else f"remove the {kind}"
