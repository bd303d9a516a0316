"""Rewrite the library's golden files after a deliberate change:

    python -m tests.library.update_golden      (from the repository root)

then read the diff (git diff tests/golden/library) before keeping it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from avatar_batch.library.manifest import write_manifest
from tests.library import test_library_html as html_test
from tests.library import test_library_manifest as manifest_test


def main() -> None:
    write_manifest(manifest_test.GOLDEN, manifest_test.golden_items(), "2025-01-02T03:04:05Z")
    with tempfile.TemporaryDirectory() as folder:
        library = html_test.build_library(Path(folder) / "output", html_test.two_items())
        page = html_test.normalised(library.html_path.read_text(encoding="utf-8"))
    html_test.GOLDEN.write_text(page, encoding="utf-8")
    print(f"wrote {manifest_test.GOLDEN} and {html_test.GOLDEN}")


if __name__ == "__main__":
    main()
