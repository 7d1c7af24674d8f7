"""``cde-otel export --to URL``: ships the local files to a collector (OTLP/HTTP), resuming where it stopped."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from filelock import FileLock, Timeout
from rich.table import Table

from cde_otel._exceptions import error_for
from cde_otel.cli._console import console
from cde_otel.cli._error_handling import handle_errors
from cde_otel.cli._export_state import LOCK_FILE, STATE_FILE
from cde_otel.cli._local_options import DirOption, JsonOption, ServiceOption, print_json, resolve_dir
from cde_otel.cli._otlp_export import Exporter, ExportReport
from cde_otel.cli._otlp_files import check_directory, signal_files
from cde_otel.semconv import SIGNALS

app = typer.Typer(help="Ship the local telemetry files to a collector (OTLP/HTTP); resumable, no duplicates.")


@app.callback(invoke_without_command=True)
def export(
    *,
    to: Annotated[str, typer.Option("--to", help="The collector's OTLP/HTTP base URL, e.g. http://127.0.0.1:4318.")],
    signal: Annotated[
        list[str] | None, typer.Option("--signal", help="Only this signal (traces, metrics, logs); repeatable.")
    ] = None,
    max_batches: Annotated[
        int | None, typer.Option("--max-batches", min=1, help="Stop after this many requests (run again to go on).")
    ] = None,
    retries: Annotated[int, typer.Option("--retries", min=0, max=20, help="Retries of a 429/503 or no answer.")] = 4,
    batch_lines: Annotated[
        int, typer.Option("--batch-lines", min=1, max=10_000, help="Lines (export requests) merged per request.")
    ] = 64,
    directory: DirOption = None,
    service: ServiceOption = None,
    as_json: JsonOption = False,
) -> None:
    with handle_errors():
        if not to.startswith(("http://", "https://")):
            raise error_for("E305", field="--to", message=f"{to!r} is not an http(s) URL")
        wanted = tuple(signal or SIGNALS)
        unknown = sorted(set(wanted) - set(SIGNALS))
        if unknown:
            raise error_for("E305", field="--signal", message=f"{', '.join(unknown)}: use traces, metrics or logs")
        where = check_directory(resolve_dir(directory, service))
        files = _files(where, wanted)
        try:
            with FileLock(where / LOCK_FILE, timeout=0):
                report = Exporter(where, to, attempts=retries + 1, lines_per_batch=batch_lines).export(
                    files, max_batches
                )
        except Timeout:
            raise error_for("E408", path=str(where), lock=str(where / LOCK_FILE)) from None
        if as_json:
            print_json({"source": str(where), "state": str(where / STATE_FILE), **report.as_dict()})
            return
        console.print(_table(report, where))
        if not report.complete:
            console.print("[yellow]Stopped at --max-batches; run the same command again to send the rest.[/]")


def _files(where: Path, wanted: tuple[str, ...]) -> dict[str, list[Path]]:
    files: dict[str, list[Path]] = {}
    for name in wanted:
        try:
            files[name] = signal_files(where, name)
        except Exception as error:
            if getattr(error, "code", None) != "E403":
                raise
    if not files:
        raise error_for("E403", path=str(where), signal=" or ".join(wanted))
    return files


def _table(report: ExportReport, where: Path) -> Table:
    table = Table(title=f"Exported to {report.target}", caption=f"from {where}; progress in {STATE_FILE}")
    for column in ("signal", "files", "requests", "lines", "items", "skipped lines", "rejected"):
        table.add_column(column, justify="left" if column == "signal" else "right")
    for name, signal in report.signals.items():
        table.add_row(
            name,
            *(str(v) for v in (signal.files, signal.batches, signal.lines, signal.items, signal.skipped_lines)),
            f"[red]{signal.rejected}[/]" if signal.rejected else "0",
        )
    return table
