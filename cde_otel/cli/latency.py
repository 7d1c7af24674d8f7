"""``cde-otel latency``: P50/P95/P99, count and error rate per tool and per operation over a window.

From the local metric files (the duration histograms, see :mod:`cde_otel.cli._quantiles`) or, with
``--prometheus URL``, from Prometheus' ``histogram_quantile`` over the same histograms.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.table import Table

from cde_otel._exceptions import error_for
from cde_otel.cli._console import console
from cde_otel.cli._error_handling import handle_errors
from cde_otel.cli._local_options import (
    DirOption,
    JsonOption,
    ServiceOption,
    SinceOption,
    print_json,
    resolve_dir,
    service_name,
    since_unix_ns,
)
from cde_otel.cli._otlp_files import ReadStats, iter_requests
from cde_otel.cli._quantiles import Row, window_rows
from cde_otel.health._percentiles import Interpolation

app = typer.Typer(help="P50/P95/P99, count and error rate per tool and operation (local files or Prometheus).")


@app.callback(invoke_without_command=True)
def latency(
    *,
    since: SinceOption = None,
    directory: DirOption = None,
    service: ServiceOption = None,
    prometheus: Annotated[
        str | None, typer.Option("--prometheus", help="Ask Prometheus at this URL instead of the local files.")
    ] = None,
    interpolation: Annotated[
        str,
        typer.Option(
            "--interpolation",
            help="Inside an exponential bucket: exponential (Prometheus 3.x) or linear (Prometheus 2.x).",
        ),
    ] = "exponential",
    as_json: JsonOption = False,
) -> None:
    with handle_errors():
        if interpolation not in {"exponential", "linear"}:
            raise error_for("E305", field="--interpolation", message="use exponential or linear")
        how: Interpolation = "linear" if interpolation == "linear" else "exponential"
        now = time.time()
        since_ns = since_unix_ns(since, now)
        stats = ReadStats()
        if prometheus is not None:
            from cde_otel.cli._prometheus import latency_rows

            window_s = None if since_ns is None else now - since_ns / 1e9
            found = latency_rows(prometheus, service_name(service), window_s, at=now)
            rows = [Row(kind, name, stat) for kind, name, stat in sorted(found, key=lambda row: row[:2])]
            source = f"Prometheus at {prometheus} (service {service_name(service)})"
        else:
            where = resolve_dir(directory, service)
            rows, _ = window_rows(iter_requests(where, "metrics", stats), since_ns, how)
            source = str(where)
        if as_json:
            window = {"since_unix_nano": since_ns, "until_unix_nano": int(now * 1e9)}
            print_json({"source": source, "window": window, "rows": [row.as_dict() for row in rows], **_read(stats)})
            return
        console.print(_table(rows, source, since))


def _read(stats: ReadStats) -> dict[str, Any]:
    return {"read": stats.as_dict()} if stats.files else {}


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.3f}"


def _table(rows: list[Row], source: str, since: str | None) -> Table:
    window = f"since {since}" if since else "everything recorded"
    table = Table(title=f"Latency per tool and operation ({window})", caption=f"from {source}")
    for column in ("kind", "name", "count", "errors", "P50 ms", "P95 ms", "P99 ms"):
        table.add_column(column, justify="left" if column in {"kind", "name"} else "right", overflow="fold")
    for row in rows:
        rate = row.error_rate
        errors = f"{row.stats.errors} ({rate:.1%})" if rate else "0"
        table.add_row(
            row.kind,
            row.name,
            str(row.stats.count),
            f"[red]{errors}[/]" if rate else errors,
            *(_ms(value) for value in (row.stats.p50, row.stats.p95, row.stats.p99)),
        )
    return table
