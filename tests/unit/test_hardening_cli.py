"""CLI edges (restore identity, SIGTERM, ports, exit codes, settings, E209 reasons)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import filelock
import pytest
from typer.testing import CliRunner

from cde_otel.cli import app
from cde_otel.core import FileSystemProjectRepository

CALM_HOST = {"CDE_OTEL_ALERT_MEMORY_PERCENT": "99.99", "CDE_OTEL_ALERT_DISK_FREE_MB": "0.001"}
PLAIN = {"NO_COLOR": "1", "COLUMNS": "200"}
# Documented in `cde-otel health --help`: 0 healthy, 1 error, 2 usage, 3 degraded, 4 unhealthy.
EXIT_ERROR, EXIT_USAGE, EXIT_DEGRADED, EXIT_UNHEALTHY = 1, 2, 3, 4
ProjectFactory = Callable[..., Path]  # tests/conftest.py
HealthServe = Callable[..., AbstractContextManager["subprocess.Popen[str]"]]  # tests/unit/conftest.py


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={**PLAIN, **(env or {})})
    return result.exit_code, result.output


# -- port range, formatted path errors, distinct exit codes ----------------------------------------------


@pytest.mark.parametrize("port", ["99999", "-1", "65536"])
def test_an_out_of_range_port_is_a_usage_error(tmp_path: Path, make_project: ProjectFactory, port: str) -> None:
    code, output = invoke("health", "serve", "--port", port, "--path", str(make_project(tmp_path, features=1)))

    assert code == EXIT_USAGE, output
    assert "Invalid value for '--port'" in output and "E902" not in output and "Internal Error" not in output


def test_an_out_of_range_port_setting_is_a_configuration_error(tmp_path: Path, make_project: ProjectFactory) -> None:
    project = make_project(tmp_path, features=1)
    code, output = invoke("health", "serve", "--path", str(project), env={"CDE_OTEL_HEALTH_PORT": "99999"})

    assert code == EXIT_ERROR, output
    assert "E903" in output and "CDE_OTEL_HEALTH_PORT" in output and "E902" not in output


def test_health_on_a_missing_path_is_a_formatted_error(tmp_path: Path) -> None:
    code, output = invoke("health", "--path", str(tmp_path / "nonexistent"))

    assert code == EXIT_ERROR, output
    assert "Project Not Found [E001]" in output and "Suggestions:" in output


def test_health_serve_on_a_missing_path_is_a_formatted_error(tmp_path: Path) -> None:
    code, output = invoke("health", "serve", "--port", "0", "--path", str(tmp_path / "nonexistent"))

    assert code == EXIT_ERROR, output
    assert "Project Not Found [E001]" in output and "Suggestions:" in output


def test_health_exit_codes_are_distinct_from_usage_and_error_codes(
    tmp_path: Path, make_project: ProjectFactory
) -> None:
    project = make_project(tmp_path / "p", features=1)
    free_mb = shutil.disk_usage(project).free / 2**20

    def health(disk_alert_mb: float) -> tuple[int, str]:
        env = {**CALM_HOST, "CDE_OTEL_ALERT_DISK_FREE_MB": str(disk_alert_mb)}
        return invoke("health", "--path", str(project), env=env)

    healthy, degraded, unhealthy = health(0.001), health(free_mb * 2), health(10**12)

    assert healthy[0] == 0, healthy[1]
    assert degraded[0] == EXIT_DEGRADED and "degraded" in degraded[1], degraded[1]
    assert unhealthy[0] == EXIT_UNHEALTHY and "unhealthy" in unhealthy[1], unhealthy[1]
    assert len({0, EXIT_ERROR, EXIT_USAGE, EXIT_DEGRADED, EXIT_UNHEALTHY}) == 5


def test_health_help_documents_the_exit_codes() -> None:
    code, output = invoke("health", "--help")

    assert code == 0
    for meaning in ("0 healthy", "1 error", "2 usage", "3 degraded", "4 unhealthy"):
        assert meaning in " ".join(output.split()), meaning


# -- the state commands honour CDE_OTEL_* settings ------------------------------------------------------


@pytest.mark.parametrize("command", ["backups", "restore"])
def test_state_commands_refuse_invalid_settings(tmp_path: Path, make_project: ProjectFactory, command: str) -> None:
    project = make_project(tmp_path, features=1)
    args = ["state", command, str(project)]
    if command == "restore":
        args.append(FileSystemProjectRepository().list_backups(project)[0].name)

    code, output = invoke(*args, env={"CDE_OTEL_STATE_LOCK_TIMEOUT_S": "abc"})

    assert code == EXIT_ERROR, output
    assert "E903" in output and "CDE_OTEL_STATE_LOCK_TIMEOUT_S" in output


def test_state_restore_uses_the_lock_timeout_setting(tmp_path: Path, make_project: ProjectFactory) -> None:
    project = make_project(tmp_path, features=1)
    backup = FileSystemProjectRepository().list_backups(project)[-1].name
    lock = filelock.FileLock(str(project / ".cde" / "state.lock"))
    env = {"CDE_OTEL_STATE_LOCK_TIMEOUT_S": "0.2", "CDE_OTEL_RETRY_ATTEMPTS": "1"}

    with lock:  # another process is saving: waiting the default 10 s would be ignoring the setting
        code, output = invoke("state", "restore", str(project), backup, env=env)

    assert code == EXIT_ERROR, output
    assert "E206" in output and "0.2" in output


def test_state_restore_uses_the_backup_retention_setting(tmp_path: Path, make_project: ProjectFactory) -> None:
    project = make_project(tmp_path, features=0)
    repo = FileSystemProjectRepository()
    for index in range(4):
        loaded = repo.get_by_path(project)
        assert loaded is not None
        loaded.start_feature(f"more {index}")
        repo.save(loaded)
    oldest = repo.list_backups(project)[-1].name

    code, output = invoke("state", "restore", str(project), oldest, env={"CDE_OTEL_BACKUP_RETENTION": "2"})

    assert code == 0, output
    assert len(repo.list_backups(project)) == 2


# -- E209 keeps the actual reason ----------------------------------------------------------------------


def test_restoring_a_damaged_backup_says_what_is_wrong(tmp_path: Path, make_project: ProjectFactory) -> None:
    project = make_project(tmp_path, features=1)
    damaged = FileSystemProjectRepository().list_backups(project)[0]
    damaged.path.write_text("{}")

    code, output = invoke("state", "restore", str(project), damaged.name)

    assert code == EXIT_ERROR, output
    assert "[E209]" in output
    assert "schema_version" in output, "the reason the backup was refused is missing"


# -- restore refuses another project's backup (CLI) ------------------------------------------------------


def test_state_restore_refuses_another_projects_backup(tmp_path: Path, make_project: ProjectFactory) -> None:
    x, y = make_project(tmp_path / "X", features=1), make_project(tmp_path / "Y", features=3)
    foreign = FileSystemProjectRepository().list_backups(y)[0]
    shutil.copy(foreign.path, x / ".cde" / "backups" / foreign.name)
    y_before = (y / ".cde" / "state.json").read_bytes()

    code, output = invoke("state", "restore", str(x), foreign.name)

    assert code == EXIT_ERROR, output
    assert "[E211]" in output and "Suggestions:" in output
    assert (y / ".cde" / "state.json").read_bytes() == y_before


# -- SIGTERM stops `health serve` gracefully -------------------------------------------------------------


def test_sigterm_stops_health_serve_gracefully(
    tmp_path: Path, make_project: ProjectFactory, health_serve: HealthServe
) -> None:
    project = make_project(tmp_path, features=1)
    with health_serve([sys.executable, "-m", "cde_otel"], project, {**CALM_HOST, **PLAIN}) as process:
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=15)
        out, err = process.communicate()

    assert returncode == 0, err
    assert "stopping" in out and "Traceback" not in err
