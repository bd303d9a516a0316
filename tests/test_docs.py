"""docs/model.md is the model document the code cites as "docs/model.md §X.Y" (later
"docs/model.md §X.Y"): every cited section must exist there as a heading, so
the citations can be rewritten mechanically and never point nowhere."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL_DOC = REPO / "docs" / "model.md"
SECTION = r"§(\d+(?:\.\d+)*[a-z]?)"
RANGE_END = r"[-–](\d+(?:\.\d+)*[a-z]?)"  # "§1.2-1.4" cites 1.2 and 1.4 (and what lies between)
# "docs/model.md §2.1, §4, §5", "(docs/model.md §6.2)", "docs/model.md §12": a source, then one or more sections.
CITATION = re.compile(
    rf"(?:spec(?:'s)?|docs/model\.md)\s+{SECTION}(?:{RANGE_END})?(?:\s*,\s*{SECTION}(?:{RANGE_END})?)*"
)
HEADING = re.compile(r"^#{1,6}\s+(\d+(?:\.\d+)*[a-z]?)\.?\s", re.MULTILINE)


def citing_files() -> list[Path]:
    return sorted((REPO / "src").rglob("*.py")) + sorted((REPO / "tests" / "fixtures").rglob("*.md"))


def citations(text: str) -> list[str]:
    cited = []
    for match in CITATION.finditer(text):
        for first, last in re.findall(rf"{SECTION}(?:{RANGE_END})?", match.group(0)):
            cited += [first, last] if last else [first]
    return cited


def section_signs_cited(text: str) -> int:
    return sum(match.group(0).count("§") for match in CITATION.finditer(text))


def test_the_citation_pattern_reads_every_form_in_use():
    text = "docs/model.md §2.1, §4, §5 and (docs/model.md §0, §6.2), docs/model.md §6.2.2, docs/model.md §2.7a; §9 alone; docs/model.md §1.2-1.4"
    assert citations(text) == ["2.1", "4", "5", "0", "6.2", "6.2.2", "2.7a", "1.2", "1.4"]


def test_every_cited_section_is_a_heading_of_docs_model_md():
    headings = set(HEADING.findall(MODEL_DOC.read_text(encoding="utf-8")))
    missing = []
    for path in citing_files():
        for section in citations(path.read_text(encoding="utf-8")):
            if section not in headings:
                missing.append(f"{path.relative_to(REPO)}: §{section}")
    assert not missing, "sections cited but not in docs/model.md:\n" + "\n".join(missing)


def test_every_section_sign_in_the_code_is_a_citation():
    """A bare "§3" would escape the check above and the mechanical rewrite."""
    loose = []
    for path in sorted((REPO / "src").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if text.count("§") != section_signs_cited(text):
            loose.append(str(path.relative_to(REPO)))
    assert not loose, f"'§' not preceded by 'spec' or 'docs/model.md' in: {loose}"
