"""`cde-otel health` and `cde-otel health serve`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cde_otel.cli import app

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


def test_health_serve_runs_until_interrupted(project: Path) -> None:
    env = {**os.environ, **CALM_HOST, "NO_COLOR": "1", "COLUMNS": "200"}
    process = subprocess.Popen(
        [sys.executable, "-c", "from cde_otel.cli import app; app()", "health", "serve", "--port", "0",
         "--path", str(project)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # blocks until the server announces itself
        match = re.search(r"http://127\.0\.0\.1:(\d+)/health", line)
        assert match, line + (process.stderr.read() if process.stderr else "")
        with urllib.request.urlopen(f"http://127.0.0.1:{match[1]}/health/ready", timeout=5) as response:
            assert response.status == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
