"""The error catalog: one complete, consistent entry per registered code (PROD-04.1-04.3)."""

from __future__ import annotations

import string

import pytest

from cde_otel.errors import (
    CATALOG,
    ERROR_CODES,
    ErrorCode,
    ErrorFormatter,
    Severity,
    StateError,
    catalog_entry,
    error_for,
)
from cde_otel.errors.catalog import DOCS_PATH, all_entries, normalize_code


def _placeholders(template: str) -> list[str]:
    return [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]


def test_all_errors_have_messages() -> None:
    missing = sorted(set(ERROR_CODES) - set(CATALOG))
    orphans = sorted(set(CATALOG) - set(ERROR_CODES))
    assert not missing, f"codes without a catalog entry: {missing}"
    assert not orphans, f"catalog entries whose code is not in ERROR_CODES: {orphans}"
    for code, entry in CATALOG.items():
        assert entry.code == code
        assert entry.title.strip() and entry.description.strip(), code
        assert entry.suggestions, f"{code} has no suggestions"
        assert entry.causes, f"{code} has no causes"
        assert entry.severity is ERROR_CODES[code].severity
        assert entry.severity in set(Severity)


def test_catalog_texts_are_ascii_and_valid_templates() -> None:
    for entry in CATALOG.values():
        for text in (entry.title, entry.description, *entry.suggestions, *entry.causes):
            assert text.isascii(), f"{entry.code}: non-ASCII text breaks the ASCII rendering: {text!r}"
        for template in (entry.description, *entry.suggestions):
            for field in _placeholders(template):  # raises on unbalanced braces
                assert field.isidentifier(), f"{entry.code}: placeholder {{{field}}} is not a plain key"


def test_suggestions_are_actionable() -> None:
    """Suggestions name what to run or change: the seed's examples and the CLI recovery commands."""
    e101 = "\n".join(CATALOG["E101"].suggestions)
    assert "project.activate()" in e101
    assert "CDE_OTEL_STATE_LOCK_TIMEOUT_S" in "\n".join(CATALOG["E206"].suggestions)
    assert "cde-otel state restore PROJECT_DIR BACKUP" in "\n".join(CATALOG["E203"].suggestions)
    assert "mkdir -p" in "\n".join(CATALOG["E001"].suggestions)


def test_docs_link_points_at_the_code_anchor() -> None:
    entry = CATALOG["E101"]
    assert entry.docs_link() == f"{DOCS_PATH}#e101" == "docs/errors/catalog.md#e101"
    assert entry.docs_link("https://example.org/errors.html") == "https://example.org/errors.html#e101"


@pytest.mark.parametrize(
    ("given", "expected"), [("E101", "E101"), ("e101", "E101"), (" E101 ", "E101"), ("101", "E101"), ("1", "E001")]
)
def test_catalog_entry_accepts_loose_spellings(given: str, expected: str) -> None:
    assert normalize_code(given) == expected
    entry = catalog_entry(given)
    assert entry is not None and entry.code == expected


@pytest.mark.parametrize("unknown", ["E999", "", "X12", "E1010", "nonsense"])
def test_catalog_entry_unknown_code_is_none(unknown: str) -> None:
    assert catalog_entry(unknown) is None


def test_registered_code_without_entry_still_formats(monkeypatch: pytest.MonkeyPatch) -> None:
    # Another layer may register a code before writing its entry: formatting must still work.
    spec = ErrorCode("E299", "STATE_TEST_ONLY", StateError, Severity.WARNING, True, "A test-only state code.")
    monkeypatch.setitem(ERROR_CODES, "E299", spec)
    entry = catalog_entry("E299")
    assert entry is not None and "E299" not in CATALOG
    assert (entry.title, entry.description) == ("State Test Only", "A test-only state code.")
    assert "E299" in [e.code for e in all_entries()]
    text = ErrorFormatter.format(error_for("E299"), ascii=True)
    assert text.splitlines()[0] == "WARNING: State Test Only [E299]"
    assert "More info: docs/errors/catalog.md#e299" in text


def test_all_entries_follow_the_registry_order() -> None:
    assert [entry.code for entry in all_entries()] == sorted(ERROR_CODES)
