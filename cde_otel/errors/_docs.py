"""Generates ``docs/errors/catalog.md`` from the catalog; the committed file must match its output.

    python -m cde_otel.errors._docs > docs/errors/catalog.md
    cde-otel errors docs --write          # same, from the repository root

Each code gets a heading preceded by ``<a id="e101"></a>``, the anchor that
:meth:`CatalogEntry.docs_link` points to. A troubleshooting guide and an FAQ
follow the reference; they link codes by anchor, so a removed code breaks a
link and the docs test.
"""

from __future__ import annotations

import re
import sys

from cde_otel._exceptions import (
    CDEError,
    CDESystemError,
    FeatureError,
    LocalTelemetryError,
    ProjectError,
    Severity,
    StateError,
    ValidationError,
)
from cde_otel.errors.catalog import CatalogEntry, all_entries
from cde_otel.errors.formatter import placeholder_text

_GROUPS: tuple[tuple[str, type[CDEError]], ...] = (
    ("Project errors", ProjectError),
    ("Feature errors", FeatureError),
    ("State errors", StateError),
    ("Validation errors", ValidationError),
    ("Local telemetry errors", LocalTelemetryError),
    ("System errors", CDESystemError),
)

SEVERITY_MEANINGS: dict[Severity, str] = {
    Severity.INFO: "Informational; no action needed.",
    Severity.WARNING: "A potential issue; review recommended. The operation may have completed or can be retried.",
    Severity.ERROR: "The operation failed; action is required before retrying.",
    Severity.CRITICAL: "A system failure (storage, repeated failures, a bug); needs immediate attention.",
}

_MD_SPECIAL = re.compile(r"([\\`*<>\[\]|])")


def _md(text: str) -> str:
    """Plain catalog text made literal in Markdown (so ``<time>`` or ``a | b`` survive rendering)."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def _link(code: str) -> str:
    return f"[{code}](#{code.lower()})"


def _entry_section(entry: CatalogEntry) -> list[str]:
    spec = entry.spec
    lines = [
        f'<a id="{entry.anchor}"></a>',
        "",
        f"### {entry.code}: {_md(entry.title)}",
        "",
        f"- **Name:** `{entry.name}`",
        f"- **Severity:** {entry.severity.value}",
        f"- **Recoverable:** {'yes' if entry.recoverable else 'no'}",
        f"- **Raised as:** `{spec.exception.__name__}`",
        "",
        _md(spec.summary),
        "",
        f"**Message:** {_md(placeholder_text(entry.description))}",
    ]
    if entry.causes:
        lines += ["", "**Causes**", "", *(f"- {_md(cause)}" for cause in entry.causes)]
    if entry.suggestions:
        lines += ["", "**Fixes**", "", *(f"- {_md(placeholder_text(fix))}" for fix in entry.suggestions)]
    return [*lines, ""]


def _reference(entries: list[CatalogEntry]) -> list[str]:
    lines: list[str] = []
    for title, cls in _GROUPS:
        low, high = cls.code_range
        members = [e for e in entries if low <= e.spec.number <= high]
        lines += [f"## {title} (E{low:03d}-E{high:03d})", ""]
        for entry in members:
            lines += _entry_section(entry)
    return lines


_TROUBLESHOOTING: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("The project does not load", ("E001", "E002", "E203", "E204", "E205", "E208", "E212", "E214"), (
        "Check that the directory exists and is readable: `ls -ld PROJECT_DIR`. "
        "cde-otel never creates the project directory itself.",
        "If the state file is damaged, list the backups with `cde-otel state backups PROJECT_DIR` and restore one "
        "with `cde-otel state restore PROJECT_DIR BACKUP`.",
        "A schema-version error means a newer cde-otel wrote the file: upgrade instead of restoring.",
    )),
    ("Saves fail, or the project became read-only", ("E201", "E206", "E207", "E210", "E901"), (
        "Check free space, mount options and permissions: `df -h PROJECT_DIR`, `mount`, `ls -ld PROJECT_DIR/.cde`.",
        "Read-only mode ends by itself once a probe write succeeds; reads keep working meanwhile.",
        "Lock timeouts mean another process holds the project: find it, or raise `CDE_OTEL_STATE_LOCK_TIMEOUT_S`.",
        "An open circuit breaker retries by itself after `CDE_OTEL_BREAKER_TIMEOUT_S` seconds.",
    )),
    ("A save is rejected as a conflict", ("E202",), (
        "Another process saved the project after you loaded it. Reload with `repo.get_by_path(path)` and apply "
        "your change again, or overwrite on purpose with `repo.save(project, force=True)`.",
    )),
    ("The feature workflow refuses a step", ("E101", "E102", "E103", "E105"), (
        "Features start only on an active project: `project.activate()`.",
        "Phases advance one at a time, in order, and a feature completes only from `review`.",
        "Completed and failed features are final: start a new feature for more work.",
    )),
    ("An MCP client's project path or argument is refused", ("E004", "E005", "E006"), (
        "`cde-otel mcp` serves `--project` (default: the working directory) and each `--allow-root`; any other "
        "path is E004 and nothing is read or created there.",
        "Ids, phases and paths have fixed maximum lengths; longer input is refused unread (E005).",
    )),
    ("An argument is rejected", ("E301", "E302", "E303", "E304", "E305"), (
        "The message names the argument and why it was rejected; the error's `context` has the details "
        "(field, length, allowed values).",
    )),
    ("cde-otel traces, latency or export fails", ("E401", "E402", "E403", "E405", "E406", "E407", "E408"), (
        "The commands read the directory of one service: pass `--service NAME` or `--dir PATH` (the directory "
        "`cde-otel demo` or the server printed), or set `CDE_OTEL_LOCAL_DIR` as the server had it.",
        "With an OTLP endpoint configured nothing is written locally: query the stack with `--jaeger URL` or "
        "`--prometheus URL` instead.",
        "An export interrupted for any reason resumes where it stopped: run the same `cde-otel export` again.",
    )),
    ("Something unexpected happened", ("E902", "E903"), (
        "Check the `CDE_OTEL_*` environment variables against the settings table in docs/configuration.md.",
        "For internal errors, the traceback is in the logs (set `CDE_OTEL_LOG_LEVEL=debug`) and on the span "
        "that failed; report it with that excerpt.",
    )),
)  # fmt: skip

_FAQ: tuple[tuple[str, str], ...] = (
    ("How do I look up a code from the terminal?",
     "`cde-otel errors explain E101` prints the explanation, causes and fixes of one code; "
     "`cde-otel errors list` lists them all."),
    ("What does *recoverable* mean?",
     "Retrying after fixing the cause can succeed and no data was lost: the state on disk is the last good "
     "version. A non-recoverable error needs a manual step first (a restore, an upgrade, a new project)."),
    ("Where is the traceback?",
     "Never in the message users see. The CLI logs it on the `cde_otel.cli` logger, the instrumentation records "
     "it on the failing span (`cde.error.code` is the error code, `error.type` its class), and "
     "`CDEError.to_dict()` has it with the state snapshot and the operations that led to the error."),
    ("How do tools such as MCP clients get errors?",
     "`ErrorFormatter.to_json(error)` returns code, name, title, severity, message, details, suggestions, docs, "
     "recoverable and context, and never the traceback. `ErrorFormatter.format_json(error)` returns it as a "
     "string."),
    ("Why does a message say `<unknown KEY>`?",
     "The error was raised without that context value. Formatting never fails on a missing key; it shows which "
     "one is missing instead."),
    ("How do I turn off the emoji?",
     "Set `NO_COLOR=1`, or call `ErrorFormatter.format(error, ascii=True)`. The ASCII form is also chosen when "
     "the output encoding cannot show emoji."),
    ("How do I make the links point at my documentation site?",
     "Set `CDE_OTEL_ERRORS_DOCS_URL` to the URL of this page as published; links become `URL#e101`. Or pass "
     "`docs_url=` to `ErrorFormatter`."),
    ("How do I add an error code?",
     "Add one row to `ERROR_CODES` in `cde_otel/_exceptions.py` inside its class's range, one `CatalogEntry` "
     "in `cde_otel/errors/catalog.py`, then regenerate this file with `cde-otel errors docs --write`. "
     "The tests fail until all three agree."),
)  # fmt: skip


def _troubleshooting() -> list[str]:
    lines = ["## Troubleshooting guide", ""]
    for symptom, codes, steps in _TROUBLESHOOTING:
        lines += [f"### {symptom}", "", "Codes: " + ", ".join(_link(code) for code in codes), ""]
        lines += [f"- {step}" for step in steps]
        lines.append("")
    return lines


def _faq() -> list[str]:
    lines = ["## FAQ", ""]
    for question, answer in _FAQ:
        lines += [f"### {question}", "", answer, ""]
    return lines


def render_catalog_markdown() -> str:
    """The whole ``docs/errors/catalog.md``, deterministic (same catalog, same bytes)."""
    entries = all_entries()
    lines = [
        "# Error catalog",
        "",
        "<!-- Generated from cde_otel/errors/catalog.py by `cde-otel errors docs --write`; do not edit by hand. -->",
        "",
        "Every error cde-otel raises on purpose carries a code. The first digit says which layer failed: "
        "E0xx project, E1xx feature, E2xx state, E3xx validation, E9xx system. Placeholders such as PATH or "
        "PROJECT_ID are filled in from the error's context when the error is shown.",
        "",
        "## Severity levels",
        "",
        "| Severity | Meaning |",
        "|---|---|",
        *(f"| {severity.value} | {meaning} |" for severity, meaning in SEVERITY_MEANINGS.items()),
        "",
        "## Index",
        "",
        "| Code | Name | Severity | Title |",
        "|---|---|---|---|",
        *(f"| {_link(e.code)} | `{e.name}` | {e.severity.value} | {_md(e.title)} |" for e in entries),
        "",
        *_reference(entries),
        *_troubleshooting(),
        *_faq(),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


def main() -> None:
    sys.stdout.write(render_catalog_markdown())


if __name__ == "__main__":
    main()
