"""`cde-otel state ...`: inspect and restore a project's durable state.

    cde-otel state backups PATH           # table: name, revision, created, size, valid?
    cde-otel state restore PATH BACKUP    # make BACKUP the current state (a new revision)

The repository is configured from the ``CDE_OTEL_*`` settings (lock timeout, backup
retention, retries and breaker), like the application's own; an invalid setting is E903.
Failures are shown formatted (code, suggestions) on stderr with exit status 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cde_otel._exceptions import StateError
from cde_otel.cli._console import console
from cde_otel.cli._error_handling import handle_errors
from cde_otel.resilience import ResilientProjectRepository
from cde_otel.settings import load_settings

app = typer.Typer(no_args_is_help=True, help="Inspect and restore the project state (.cde/state.json and backups).")

PathArg = Annotated[Path, typer.Argument(help="The project directory (the one holding .cde/).")]


@app.command("backups")
def backups(path: PathArg) -> None:
    """List the checksummed backups of the project at PATH, newest first."""
    with handle_errors():
        repo = ResilientProjectRepository(load_settings())
        found = repo.list_backups(path)
        table = Table(title=f"Backups of {path}")
        for column in ("name", "revision", "created (UTC)", "size", "valid?"):
            table.add_column(column, justify="right" if column in ("revision", "size") else "left", overflow="fold")
        for backup in found:
            try:
                repo.load_backup(path, backup.name)
                valid = "yes"
            except StateError as exc:
                valid = f"no ({exc.code})"
            table.add_row(
                backup.name,
                str(backup.revision),
                backup.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                f"{backup.size_bytes} B",
                valid,
            )
        if not found:
            console.print(f"No backups in {path}/.cde/backups.")
            return
        console.print(table)


@app.command("restore")
def restore(
    path: PathArg,
    backup: Annotated[str, typer.Argument(help="A backup name from `cde-otel state backups PATH`.")],
) -> None:
    """Make BACKUP the current state of the project at PATH (a damaged state file is kept aside)."""
    with handle_errors():
        project = ResilientProjectRepository(load_settings()).restore_backup(path, backup)
        console.print(
            f"Restored {backup} into {project.path}/.cde/state.json as revision {project.revision} "
            f"({len(project.features)} features, status {project.status.value})."
        )
