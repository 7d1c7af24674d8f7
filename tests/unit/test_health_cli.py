"""`cde-otel health` and `cde-otel health serve`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cde_otel.cli import app

HealthServe = Callable[..., AbstractContextManager["subprocess.Popen[str]"]]  # tests/unit/conftest.py

# The host's real memory/disk must not decide these tests' verdicts.
CALM_HOST = {"CDE_OTEL_ALERT_MEMORY_PERCENT": "99.99", "CDE_OTEL_ALERT_DISK_FREE_MB": "0.001"}


@pytest.fixture
def project(make_project: Callable[..., Path]) -> Path:
    return make_project(features=2)


def test_health_json_prints_the_status(project: Path) -> None:
    result = CliRunner().invoke(app, ["health", "--path", str(project), "--json"], env=CALM_HOST)

    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["status"] == "healthy"
    assert status["metrics"]["active_features"] == 2


def test_health_table_and_exit_code_follow_the_status(project: Path) -> None:
    healthy = CliRunner().invoke(app, ["health", "--path", str(project)], env=CALM_HOST)
    assert healthy.exit_code == 0, healthy.output
    assert "healthy" in healthy.output and "active_features" in healthy.output

    strict = {**CALM_HOST, "CDE_OTEL_ALERT_DISK_FREE_MB": str(10**12)}  # every disk is "critical" now
    unhealthy = CliRunner().invoke(app, ["health", "--path", str(project)], env=strict)
    assert unhealthy.exit_code == 4  # 1 and 2 stay the CLI-wide error and usage codes
    assert "unhealthy" in unhealthy.output and "CDEDiskSpaceLow" in unhealthy.output


def test_health_on_a_missing_path_fails_with_a_code(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["health", "--path", str(tmp_path / "missing")])

    assert result.exit_code == 1
    assert "E001" in result.output


def test_health_serve_runs_until_interrupted(project: Path, health_serve: HealthServe) -> None:
    app_cli = [sys.executable, "-c", "from cde_otel.cli import app; app()"]
    with health_serve(app_cli, project, {**CALM_HOST, "NO_COLOR": "1", "COLUMNS": "200"}) as process:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
