"""The README stays true: its settings table is the code's, and CI runs its test command."""

from __future__ import annotations

import re
from pathlib import Path

from cde_otel.settings import SETTINGS, markdown_table

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_readme_renders_the_one_settings_table() -> None:
    block = re.search(r"<!-- settings-table:start -->\n(.*?)\n<!-- settings-table:end -->", README, re.S)
    assert block is not None
    assert block.group(1) == markdown_table(), "re-render with: cde-otel settings --markdown"
    assert all(f"`{s.env}`" in block.group(1) for s in SETTINGS)


def test_ci_runs_the_readme_test_command() -> None:
    assert "bash scripts/test.sh" in README and "bash scripts/demo.sh" in README
    ci = (ROOT / ".ci/run").read_text()
    assert re.search(r"^exec bash scripts/test\.sh$", ci, re.M)


def test_every_setting_is_read_through_the_table() -> None:
    """No module reads a CDE_OTEL_* variable behind the table's back (the bootstrap's pre-import check aside)."""
    allowed = {"settings.py", "_bootstrap.py"}
    offenders = []
    for path in (ROOT / "cde_otel").rglob("*.py"):
        if path.name in allowed:
            continue
        for match in re.finditer(r"environ(?:\.get)?\(?\[?[\"'](CDE_OTEL_\w+)", path.read_text()):
            offenders.append(f"{path.relative_to(ROOT)}: {match.group(1)}")
    assert offenders == []
