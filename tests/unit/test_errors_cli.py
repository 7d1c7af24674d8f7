"""`cde-otel errors ...` and the shared CLI error handling (`cde_otel.cli._error_handling.handle_errors`)."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cde_otel.cli import app as root_app
from cde_otel.cli._error_handling import handle_errors
from cde_otel.core import FileSystemProjectRepository
from cde_otel.errors import CATALOG, ERROR_CODES
from cde_otel.errors._docs import render_catalog_markdown

runner = CliRunner()


def test_errors_list_shows_every_code() -> None:
    result = runner.invoke(root_app, ["errors", "list"])
    assert result.exit_code == 0, result.output
    for code, spec in ERROR_CODES.items():
        assert re.search(rf"{code}\s*\S\s*{spec.name}\s*\S\s*{spec.severity.value}\b", result.stdout), code


def test_errors_explain_prints_the_long_explanation() -> None:
    result = runner.invoke(root_app, ["errors", "explain", "E001"])
    assert result.exit_code == 0, result.output
    entry = CATALOG["E001"]
    out = result.stdout
    assert out.startswith(f"E001: {entry.title}\n")
    assert ERROR_CODES["E001"].summary in out
    assert "The project path 'PATH' does not exist or is not a directory." in out
    assert all(cause in out for cause in entry.causes)
    assert "mkdir -p PATH" in out
    assert "More info: docs/errors/catalog.md#e001" in out


def test_errors_explain_accepts_lower_case() -> None:
    result = runner.invoke(root_app, ["errors", "explain", "e101"])
    assert result.exit_code == 0
    assert "project.activate()" in result.stdout


def test_errors_explain_unknown_code_is_friendly() -> None:
    result = runner.invoke(root_app, ["errors", "explain", "E999"])
    assert result.exit_code == 2
    assert "Unknown error code 'E999'" in result.stderr
    assert "cde-otel errors list" in result.stderr
    assert "Traceback" not in result.output


def test_errors_docs_prints_writes_and_checks(tmp_path: Path) -> None:
    printed = runner.invoke(root_app, ["errors", "docs"])
    assert printed.exit_code == 0
    assert printed.stdout == render_catalog_markdown()

    stale = runner.invoke(root_app, ["errors", "docs", "--check", "--root", str(tmp_path)])
    assert stale.exit_code == 1
    assert "out of date" in stale.stderr

    written = runner.invoke(root_app, ["errors", "docs", "--write", "--root", str(tmp_path)])
    assert written.exit_code == 0
    assert (tmp_path / "docs/errors/catalog.md").read_text(encoding="utf-8") == render_catalog_markdown()
    assert runner.invoke(root_app, ["errors", "docs", "--check", "--root", str(tmp_path)]).exit_code == 0


# -- handle_errors ------------------------------------------------------------------------

demo = typer.Typer()


@demo.command()
@handle_errors()
def start(path: str) -> None:
    project = FileSystemProjectRepository().get_or_create(path)
    project.start_feature("Add a login page")  # the project is not active: FeatureError E101


@demo.command()
def crash() -> None:
    with handle_errors():
        raise ValueError("secret internals")


@demo.command()
@handle_errors()
def leave(code: int) -> None:
    raise typer.Exit(code)


def test_handle_errors_formats_cde_errors(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="cde_otel.cli")
    result = runner.invoke(demo, ["start", str(tmp_path)], env={"NO_COLOR": None})
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "Feature Creation Failed [E101]" in result.stderr
    assert "💡 Suggestions:" in result.stderr and "project.activate()" in result.stderr
    assert "Traceback" not in result.output
    records = [r for r in caplog.records if r.name == "cde_otel.cli"]
    assert records and records[-1].exc_info is not None  # the traceback went to the log instead
    assert records[-1].levelno == logging.DEBUG


def test_handle_errors_wraps_unexpected_exceptions(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="cde_otel.cli")
    result = runner.invoke(demo, ["crash"], env={"NO_COLOR": "1"})
    assert result.exit_code == 1
    assert result.stderr.startswith("CRITICAL: Internal Error [E902]")  # NO_COLOR: the ASCII form
    assert "ValueError" in result.stderr
    assert "secret internals" not in result.output and "Traceback" not in result.output
    (record,) = [r for r in caplog.records if r.name == "cde_otel.cli"]
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert record.exc_info[0] is ValueError


def test_handle_errors_lets_typer_exits_through() -> None:
    assert runner.invoke(demo, ["leave", "3"]).exit_code == 3
    assert runner.invoke(demo, ["leave", "0"]).exit_code == 0
    usage = runner.invoke(demo, ["leave", "not-a-number"])
    assert usage.exit_code == 2  # typer's own usage error, untouched


def test_handle_errors_never_prints_a_traceback_without_logging_configured() -> None:
    """In a plain process (no logging handlers) the error record must not reach Python's last-resort stderr."""
    script = (
        "import typer\n"
        "from cde_otel.cli._error_handling import handle_errors\n"
        "app = typer.Typer()\n"
        "@app.command()\n"
        "def crash() -> None:\n"
        "    with handle_errors():\n"
        "        raise ValueError('secret internals')\n"
        "app()\n"
    )
    env = {**os.environ, "NO_COLOR": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, timeout=60, env=env, text=True
    )
    assert result.returncode == 1
    assert result.stderr.startswith("CRITICAL: Internal Error [E902]")
    assert "Traceback" not in result.stderr and "secret internals" not in result.stderr
