"""The README and docs/ stay true: the README is a short front door with the two commands CI runs,
every relative link resolves (anchors included), the settings table and the layer diagram are the
code's, and no page under docs/ is left unlinked."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from urllib.parse import unquote, urlsplit

from cde_otel.settings import SETTINGS, markdown_table

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CONFIGURATION = ROOT / "docs" / "configuration.md"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
PAGES = [README, ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _links(page: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", page.read_text()))


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    headings = re.findall(r"^#{1,6} (.+)$", text, re.M)
    return {_anchor(h) for h in headings} | set(re.findall(r'<a id="([^"]+)"></a>', text))


def test_the_readme_is_a_front_door_with_the_two_commands() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    commands = re.search(r"```bash\n(.*?)```", text, re.S)
    assert commands is not None
    assert [line.split()[:3] for line in commands.group(1).splitlines()] == [
        ["bash", "scripts/demo.sh", "#"],
        ["bash", "scripts/test.sh", "#"],
    ]
    ci = (ROOT / ".ci/run").read_text()
    assert re.search(r"^exec bash scripts/test\.sh$", ci, re.M)


def test_every_relative_link_resolves() -> None:
    broken = []
    checked = 0
    for page in PAGES:
        for link in _links(page):
            parts = urlsplit(link)
            if parts.scheme or link.startswith("//"):
                continue  # external: not checked here
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            checked += 1
            if not target.exists():
                broken.append(f"{page.relative_to(ROOT)}: {link} (no such file)")
            elif parts.fragment and target.suffix == ".md" and parts.fragment not in _anchors(target):
                broken.append(f"{page.relative_to(ROOT)}: {link} (no such heading)")
    assert checked > 20  # the pages link to each other: a regex that finds nothing proves nothing
    assert broken == []


def test_every_page_under_docs_is_linked_from_the_readme() -> None:
    linked = {(ROOT / urlsplit(link).path).resolve() for link in _links(README) if not urlsplit(link).scheme}
    pages = {page.resolve() for page in (ROOT / "docs").glob("*.md")}
    assert sorted(p.name for p in pages - linked) == []


def test_configuration_renders_the_one_settings_table() -> None:
    text = CONFIGURATION.read_text()
    block = re.search(r"<!-- settings-table:start -->\n(.*?)\n<!-- settings-table:end -->", text, re.S)
    assert block is not None
    assert block.group(1) == markdown_table(), "re-render with: cde-otel settings --markdown"
    assert all(f"`{s.env}`" in block.group(1) for s in SETTINGS)


def test_architecture_shows_the_import_contract_layers() -> None:
    block = re.search(r"<!-- layers:start -->\n```\n(.*?)```\n<!-- layers:end -->", ARCHITECTURE.read_text(), re.S)
    assert block is not None
    # Each diagram line is the layer's siblings, then (after two or more spaces) an optional note.
    drawn = [re.split(r"\s{2,}", line)[0].split(" | ") for line in block.group(1).splitlines()]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (layers,) = (c for c in pyproject["tool"]["importlinter"]["contracts"] if c["type"] == "layers")
    declared = [[name.strip().removeprefix("cde_otel.") for name in layer.split("|")] for layer in layers["layers"]]
    assert drawn == declared


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


ISSUE_REFERENCE = re.compile(r"\bissues? ?#?\d+|\bitem \d+ of\b", re.I)


def test_code_tests_and_docs_say_what_and_why_not_an_issue_number() -> None:
    sources = [
        path
        for folder in ("cde_otel", "tests", "bench", "scripts", "docs", "examples", "collector-config")
        for path in (ROOT / folder).rglob("*")
        if path.suffix in {".py", ".md", ".sh", ".toml", ".yml", ".yaml"}
    ]
    sources += [*PAGES[:3], ROOT / "pyproject.toml", ROOT / "docker-compose.yml"]
    this_file = Path(__file__).resolve()
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sources
        if path.resolve() != this_file
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if ISSUE_REFERENCE.search(line)
    ]
    assert not found, found
