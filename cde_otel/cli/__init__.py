"""The ``cde-otel`` command line: one Typer app assembling each layer's commands."""

from __future__ import annotations

from typing import Annotated

import typer

from cde_otel.cli import demo, errors, export, health, latency, mcp, state, traces

app = typer.Typer(
    name="cde-otel",
    no_args_is_help=True,
    help="Production readiness and OpenTelemetry for the CDE Orchestrator.",
    pretty_exceptions_enable=False,
)
app.add_typer(errors.app, name="errors")
app.add_typer(state.app, name="state")
app.add_typer(health.app, name="health")
app.add_typer(demo.app, name="demo")
app.add_typer(mcp.app, name="mcp")
app.add_typer(traces.app, name="traces")
app.add_typer(latency.app, name="latency")
app.add_typer(export.app, name="export")


@app.command("settings")
def settings_command(
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the table as Markdown (as in docs/configuration.md).")
    ] = False,
) -> None:
    """Every CDE_OTEL_* setting: variable, default, type and meaning, with the value in effect."""
    from rich.table import Table

    from cde_otel.cli._console import console
    from cde_otel.cli._error_handling import handle_errors
    from cde_otel.settings import SETTINGS, load_settings, markdown_table

    if markdown:
        console.out(markdown_table(), highlight=False)
        return
    with handle_errors():
        current = load_settings()
    table = Table(title="cde-otel settings")
    for column in ("variable", "default", "in effect", "type", "meaning"):
        table.add_column(column, overflow="fold")
    for setting in SETTINGS:
        table.add_row(
            setting.env, str(setting.default), str(getattr(current, setting.name)), setting.type_name, setting.meaning
        )
    console.print(table)


def main() -> None:
    try:
        app()
    except Exception as error:  # outside any command (e.g. while assembling): still no raw traceback
        from cde_otel.cli._error_handling import report_error

        report_error(error)
        raise SystemExit(1) from None
