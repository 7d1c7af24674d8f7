"""docs/errors/catalog.md: generated from the catalog, committed, and every link resolves (PROD-04.4)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from cde_otel.errors import ERROR_CODES
from cde_otel.errors._docs import render_catalog_markdown
from cde_otel.errors.catalog import DOCS_PATH, all_entries

REPO_ROOT = Path(__file__).resolve().parents[2]
CATALOG_DOC = REPO_ROOT / DOCS_PATH
_ANCHOR = re.compile(r'<a id="([^"]+)"></a>')
_INTERNAL_LINK = re.compile(r"\]\(#([^)]+)\)")


def _committed() -> str:
    assert CATALOG_DOC.is_file(), f"{DOCS_PATH} is missing; run: cde-otel errors docs --write"
    return CATALOG_DOC.read_text(encoding="utf-8")


def test_documentation_links_valid() -> None:
    text = _committed()
    anchors = _ANCHOR.findall(text)
    assert len(anchors) == len(set(anchors)), "duplicate anchors"
    lines = text.splitlines()
    for entry in all_entries():
        path, _, fragment = entry.docs_link().partition("#")
        assert (REPO_ROOT / path).is_file(), f"{entry.code}: {path} does not exist"
        assert fragment in anchors, f"{entry.code}: no anchor #{fragment} in {path}"
        # The anchor introduces this code's own section.
        at = lines.index(f'<a id="{fragment}"></a>')
        assert lines[at + 2] == f"### {entry.code}: {entry.title}"
    for target in _INTERNAL_LINK.findall(text):
        assert target in anchors, f"link to #{target} has no anchor"


def test_catalog_doc_matches_the_generator() -> None:
    assert _committed() == render_catalog_markdown(), (
        f"{DOCS_PATH} is out of date; regenerate it with: cde-otel errors docs --write"
    )


def test_catalog_doc_covers_every_code_with_causes_and_fixes() -> None:
    text = render_catalog_markdown()
    sections = text.split('<a id="')
    for code, spec in ERROR_CODES.items():
        section = next(s for s in sections if s.startswith(f'{code.lower()}"'))
        assert f"**Severity:** {spec.severity.value}" in section
        assert "**Causes**" in section and "**Fixes**" in section, code
    assert "## Troubleshooting guide" in text and "## FAQ" in text
    assert "## Severity levels" in text
    # Placeholders are shown as names in capitals, not raw braces or HTML-like tags.
    e001 = next(s for s in sections if s.startswith('e001"'))
    assert "mkdir -p PATH" in e001 and "{path" not in text


def test_generator_module_prints_the_catalog() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cde_otel.errors._docs"], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout == render_catalog_markdown()
