"""`cde-otel health ...` commands.

    cde-otel health [--path P] [--json]                  # status as a table (or JSON)
    cde-otel health serve [--host H] [--port N] [--path P]  # HTTP endpoints until Ctrl-C or SIGTERM

Host and port default to the settings ``health_host`` / ``health_port``
(``CDE_OTEL_HEALTH_HOST``, ``CDE_OTEL_HEALTH_PORT``).

Exit codes, usable from scripts: ``cde-otel health`` exits 0 healthy, 1 error (a coded
error, shown formatted like every command's), 2 usage error (typer's), 3 degraded,
4 unhealthy. ``cde-otel health serve`` exits 0 after Ctrl-C or SIGTERM (a graceful stop:
requests in progress are answered first), 1 when it cannot start, 2 on a usage error
such as a port outside 0-65535.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cde_otel._exceptions import CDESystemError
from cde_otel.cli._console import console
from cde_otel.cli._error_handling import handle_errors
from cde_otel.settings import load_settings

app = typer.Typer(
    help="Health status and HTTP health endpoints. "
    "Exit codes of `cde-otel health`: 0 healthy, 1 error, 2 usage error, 3 degraded, 4 unhealthy.",
    invoke_without_command=True,
)

PathOption = Annotated[Path | None, typer.Option("--path", "-p", help="Project directory (default: current).")]
#: 1 (a coded error) and 2 (a usage error) mean the same for every command, so the states take 3 and 4.
EXIT_DEGRADED, EXIT_UNHEALTHY = 3, 4
_EXIT = {"healthy": 0, "degraded": EXIT_DEGRADED, "unhealthy": EXIT_UNHEALTHY}
MAX_PORT = 65535
_STYLE = {"healthy": "green", "ok": "green", "degraded": "yellow", "warning": "yellow",
          "unhealthy": "red", "critical": "red", "failing": "red"}  # fmt: skip


@app.callback()
def show(
    ctx: typer.Context,
    path: PathOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Print the health status of the project.

    Exit codes: 0 healthy, 1 error, 2 usage error, 3 degraded, 4 unhealthy.
    """
    if ctx.invoked_subcommand is not None:
        return
    from cde_otel.health import HealthMonitor

    with handle_errors():
        status = HealthMonitor(path).get_status()
    if as_json:
        console.print_json(json.dumps(status, default=str))
    else:
        _print_status(status)
    raise typer.Exit(_EXIT.get(status["status"], EXIT_UNHEALTHY))


def _styled(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, dict | list) else str(value)
    style = _STYLE.get(text)
    return f"[{style}]{text}[/{style}]" if style else text


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.2f} ms"


def _print_status(status: dict[str, Any]) -> None:
    console.print(
        f"Status: {_styled(status['status'])}   version {status['version']}   "
        f"uptime {status['uptime_seconds']:.0f}s   project {status['project_path']}"
    )
    summary = Table(title="Metrics and checks", show_header=True)
    summary.add_column("Name")
    summary.add_column("Value")
    for name, value in status["metrics"].items():
        if name != "operations":
            summary.add_row(name, _styled(value))
    for name, value in status["checks"].items():
        summary.add_row(f"check: {name}", _styled(value))
    console.print(summary)
    operations = status["metrics"]["operations"]
    if operations:
        table = Table(title="Operations (since start)")
        for column in ("Operation", "Count", "Mean", "P50", "P95", "P99"):
            table.add_column(column, justify="left" if column == "Operation" else "right")
        for name, s in operations.items():
            table.add_row(name, str(s["count"]), *(_seconds(s[k]) for k in ("mean", "p50", "p95", "p99")))
        console.print(table)
    for alert in status["alerts"]:
        console.print(f"[{_STYLE.get(alert['severity'], 'yellow')}]ALERT {alert['name']}[/]: {alert['message']}")
    for reason in status["reasons"]:
        if not any(reason == alert["message"] for alert in status["alerts"]):
            console.print(f"[yellow]- {reason}[/yellow]")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default: setting health_host).")] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=MAX_PORT, help="Port (default: setting health_port; 0 = any free).")
    ] = None,
    path: PathOption = None,
    *,
    head_timeout: Annotated[
        float, typer.Option(min=0.05, help="Seconds a request may take to arrive complete (slow clients are closed).")
    ] = 5.0,
    connection_limit: Annotated[int, typer.Option(min=1, help="Open connections at most.")] = 1000,
    state_timeout: Annotated[
        float, typer.Option(min=0.05, help="Seconds readiness waits for the state to be read before answering 503.")
    ] = 2.0,
) -> None:
    """Serve /health, /health/ready, /health/metrics and /health/status until Ctrl-C or SIGTERM.

    Exit codes: 0 stopped by Ctrl-C or SIGTERM, 1 error (cannot start), 2 usage error.
    """
    from cde_otel.health import HealthMonitor, start_health_server

    with handle_errors():
        settings = load_settings()
        chosen = settings.health_port if port is None else port
        bind = host or settings.health_host
        if not 0 <= chosen <= MAX_PORT:
            raise CDESystemError(
                f"CDE_OTEL_HEALTH_PORT={chosen} is not a port (0-{MAX_PORT})",
                "E903",
                {"setting": "CDE_OTEL_HEALTH_PORT", "value": str(chosen), "expected": f"port from 0 to {MAX_PORT}"},
            )
        monitor = HealthMonitor(path, settings=settings, state_read_timeout_s=state_timeout)
        try:
            server = start_health_server(
                port=chosen, host=bind, monitor=monitor, head_timeout_s=head_timeout, connection_limit=connection_limit
            )
        except OSError as exc:  # address in use, or not an address of this host
            raise CDESystemError(
                f"cannot listen on {bind}:{chosen}: {exc.strerror or exc}",
                "E903",
                {"setting": "--host/--port (CDE_OTEL_HEALTH_HOST, CDE_OTEL_HEALTH_PORT)", "value": f"{bind}:{chosen}",
                 "expected": f"address this host can listen on ({exc.strerror or exc})"},
            ) from exc  # fmt: skip
    console.print(f"Serving {server.url}/health (Ctrl-C or SIGTERM to stop)", soft_wrap=True)
    stopped = threading.Event()
    # SIGTERM (service managers, `kill`, container runtimes) stops as gracefully as Ctrl-C.
    previous = signal.signal(signal.SIGTERM, lambda _signum, _frame: stopped.set())
    try:
        while not stopped.wait(0.5):  # short waits keep Ctrl-C responsive
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        console.print("stopping")
        server.stop()
