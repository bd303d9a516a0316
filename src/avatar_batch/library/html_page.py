"""index.html: one static page that browses and plays the library, opened
straight from disk (file://) or served by any web server.

The page is `player_template.html` with the playable items embedded as JSON in
a `<script type="application/json">` block. Catalogue text reaches the page
only through that JSON and the script puts it into the DOM with `textContent`,
so an answer containing markup is shown as text, never run. `<`, `>` and `&`
are written as \\u escapes so no answer can close the script block.

Each item carries its WebVTT text too: browsers refuse to load a `<track>`
file from file:// URLs, so the page then attaches the text as a Blob URL.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

from avatar_batch.core.records import LibraryItem
from avatar_batch.library.layout import PLAYABLE_STATUSES

TEMPLATE_NAME = "player_template.html"
DATA_PLACEHOLDER = "@LIBRARY_DATA@"
PAGE_FIELDS = (
    "job_id",
    "entry_id",
    "language",
    "department",
    "question",
    "answer",
    "status",
    "video",
    "poster",
    "captions_vtt",
    "duration_s",
)
_SCRIPT_SAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


def load_template() -> str:
    return resources.files("avatar_batch.library").joinpath(TEMPLATE_NAME).read_text(encoding="utf-8")


def page_data(items: Iterable[LibraryItem], generated_at: str, vtt_texts: Mapping[str, str]) -> dict[str, Any]:
    """What the page knows: playable items only, ordered for browsing."""
    playable = [item for item in items if item.status in PLAYABLE_STATUSES]
    playable.sort(key=lambda i: (i.department, i.entry_id, i.language))
    rows = []
    for item in playable:
        row = {name: getattr(item, name) for name in PAGE_FIELDS}
        row["vtt"] = vtt_texts.get(item.job_id)
        rows.append(row)
    return {"generated_at": generated_at, "items": rows}


def script_safe_json(data: Any) -> str:
    """JSON that can sit inside a <script> element whatever strings it holds."""
    text = json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    for char, escaped in _SCRIPT_SAFE.items():
        text = text.replace(char, escaped)
    return text


def render_page(
    items: Iterable[LibraryItem],
    generated_at: str,
    vtt_texts: Mapping[str, str],
    template: str | None = None,
) -> str:
    page = template if template is not None else load_template()
    if page.count(DATA_PLACEHOLDER) != 1:
        raise ValueError(f"{TEMPLATE_NAME} must contain {DATA_PLACEHOLDER} exactly once")
    return page.replace(DATA_PLACEHOLDER, script_safe_json(page_data(items, generated_at, vtt_texts)))
