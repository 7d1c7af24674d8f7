"""`cde-otel errors ...`: look up error codes.

    cde-otel errors list              # every code: code, name, severity, title
    cde-otel errors explain E101      # causes, fixes and link of one code (like `rustc --explain`)
    cde-otel errors docs --write      # regenerate docs/errors/catalog.md (run from the repository root)
    cde-otel errors docs --check      # exit 1 when the committed file is out of date

An unknown code is reported plainly with exit status 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cde_otel.cli._console import console, err_console
from cde_otel.cli._error_handling import handle_errors
from cde_otel.errors._docs import render_catalog_markdown
from cde_otel.errors.catalog import DOCS_PATH, all_entries
from cde_otel.errors.formatter import ErrorFormatter

#: Exit status for an unknown code (a usage problem, as typer uses for bad arguments).
UNKNOWN_CODE_EXIT = 2

app = typer.Typer(no_args_is_help=True, help="Look up error codes: list them, explain one, generate their docs.")


def _plain(target: Console, text: str, *, end: str = "\n") -> None:
    """Prints ``text`` verbatim: no markup, emoji codes, highlighting or re-wrapping."""
    target.print(text, end=end, markup=False, emoji=False, highlight=False, soft_wrap=True)


@app.command("list")
@handle_errors()
def list_codes() -> None:
    """List every error code with its name, severity and title."""
    table = Table(title="cde-otel error codes")
    table.add_column("Code", no_wrap=True)
    table.add_column("Name", no_wrap=True)
    table.add_column("Severity", no_wrap=True)
    table.add_column("Title")
    for entry in all_entries():
        table.add_row(entry.code, entry.name, entry.severity.value, entry.title)
    console.print(table)


@app.command()
@handle_errors()
def explain(code: Annotated[str, typer.Argument(help="An error code such as E101 (any case).")]) -> None:
    """Explain one error code: what it means, its causes, how to fix it, and where to read more."""
    text = ErrorFormatter.explain(code)
    if text is None:
        _plain(err_console, f"Unknown error code {code.strip()!r}. Run `cde-otel errors list` to see every code.")
        raise typer.Exit(UNKNOWN_CODE_EXIT)
    _plain(console, text)


@app.command()
@handle_errors()
def docs(
    write: Annotated[bool, typer.Option("--write", help=f"Write {DOCS_PATH} under --root.")] = False,
    check: Annotated[bool, typer.Option("--check", help=f"Exit 1 when {DOCS_PATH} is out of date.")] = False,
    root: Annotated[Path, typer.Option(help="Repository root holding docs/.")] = Path("."),
) -> None:
    """Print the Markdown error catalog generated from the code, or write/check the committed file."""
    text = render_catalog_markdown()
    target = root / DOCS_PATH
    if check:
        current = target.read_text(encoding="utf-8") if target.is_file() else None
        if current != text:
            _plain(err_console, f"{target} is out of date; run: cde-otel errors docs --write")
            raise typer.Exit(1)
        _plain(console, f"{target} is up to date.")
    elif write:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        _plain(console, f"Wrote {target}.")
    else:
        _plain(console, text, end="")
