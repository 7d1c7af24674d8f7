"""The ``cde-otel`` command line: one Typer app assembling each layer's commands."""

from __future__ import annotations

import typer

from cde_otel.cli import demo, errors, health, state

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


def main() -> None:
    app()
