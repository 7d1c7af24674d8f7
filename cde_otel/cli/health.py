"""`cde-otel health ...` commands.

    cde-otel health [--path P] [--json]                  # status as a table (or JSON)
    cde-otel health serve [--host H] [--port N] [--path P]  # HTTP endpoints until Ctrl-C

Host and port default to the settings ``health_host`` / ``health_port``
(``CDE_OTEL_HEALTH_HOST``, ``CDE_OTEL_HEALTH_PORT``). Exit code of ``cde-otel health``:
0 healthy, 1 degraded, 2 unhealthy — usable from scripts.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cde_otel._exceptions import CDEError
from cde_otel.cli._console import console, err_console
from cde_otel.settings import load_settings

app = typer.Typer(help="Health status and HTTP health endpoints.", invoke_without_command=True)

PathOption = Annotated[Path | None, typer.Option("--path", "-p", help="Project directory (default: current).")]
_EXIT = {"healthy": 0, "degraded": 1, "unhealthy": 2}
_STYLE = {"healthy": "green", "ok": "green", "degraded": "yellow", "warning": "yellow",
          "unhealthy": "red", "critical": "red", "failing": "red"}  # fmt: skip


@app.callback()
def show(
    ctx: typer.Context,
    path: PathOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Print the health status of the project (exit 0 healthy, 1 degraded, 2 unhealthy)."""
    if ctx.invoked_subcommand is not None:
        return
    from cde_otel.health import HealthMonitor

    try:
        status = HealthMonitor(path).get_status()
    except CDEError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if as_json:
        console.print_json(json.dumps(status, default=str))
    else:
        _print_status(status)
    raise typer.Exit(_EXIT.get(status["status"], 2))


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
    port: Annotated[int | None, typer.Option(help="Port (default: setting health_port; 0 = any free).")] = None,
    path: PathOption = None,
) -> None:
    """Serve /health, /health/ready and /health/metrics until Ctrl-C."""
    from cde_otel.health import HealthMonitor, start_health_server

    settings = load_settings()
    try:
        monitor = HealthMonitor(path, settings=settings)
        server = start_health_server(
            port=settings.health_port if port is None else port,
            host=host or settings.health_host,
            monitor=monitor,
        )
    except (CDEError, OSError) as exc:
        err_console.print(f"[red]cannot start the health server: {exc}[/red]")
        raise typer.Exit(2) from None
    console.print(f"Serving {server.url}/health (Ctrl-C to stop)", soft_wrap=True)
    stopped = threading.Event()
    try:
        while not stopped.wait(0.5):  # short waits keep Ctrl-C responsive
            pass
    except KeyboardInterrupt:
        console.print("stopping")
    finally:
        server.stop()
