"""What ``traces``, ``latency`` and ``export`` share: the local directory, time windows, JSON output."""

from __future__ import annotations

import os
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from cde_otel._exceptions import error_for
from cde_otel.cli._console import console
from cde_otel.settings import load_settings
from cde_otel.telemetry import local_telemetry_dir

DirOption = Annotated[
    Path | None,
    typer.Option("--dir", help="The local telemetry directory (default: the service's, as the server wrote it)."),
]
ServiceOption = Annotated[
    str | None,
    typer.Option(
        "--service", help="Service name (default: OTEL_SERVICE_NAME, else cde-orchestrator): its local directory, "
        "and what Jaeger/Prometheus are asked for."
    ),
]  # fmt: skip
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]
SinceOption = Annotated[
    str | None,
    typer.Option("--since", help="Only what started in this window: a duration (30s, 15m, 2h, 1d) or an ISO time."),
]

_UNITS_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ns|us|µs|ms|s|m|h|d)?\s*$")


def service_name(service: str | None) -> str:
    from cde_otel.telemetry._pipeline import configured_service_name

    return service or configured_service_name(os.environ)


def resolve_dir(directory: Path | None, service: str | None) -> Path:
    """``--dir``, else the directory the embedded default uses for ``--service`` (or the configured one)."""
    if directory is not None:
        return directory.expanduser().resolve()
    return local_telemetry_dir(load_settings(), service_name(service))


def parse_duration_s(text: str, option: str, default_unit: str = "s") -> float:
    """``"250ms"`` -> 0.25; a bare number is in ``default_unit``; E305 when it is not a duration."""
    match = _DURATION.match(text)
    if not match:
        raise error_for("E305", field=option, message=f"{text!r} is not a duration such as 250ms, 30s, 15m or 2h")
    return float(match.group(1)) * _UNITS_S[match.group(2) or default_unit]


def since_unix_ns(since: str | None, now_s: float | None = None) -> int | None:
    """The start of the ``--since`` window in Unix nanoseconds (None: no window)."""
    if since is None:
        return None
    now_s = time.time() if now_s is None else now_s
    if _DURATION.match(since):
        return int((now_s - parse_duration_s(since, "--since")) * 1e9)
    try:
        moment = datetime.fromisoformat(since)
    except ValueError:
        raise error_for("E305", field="--since", message=f"{since!r} is neither a duration nor an ISO time") from None
    return int(moment.timestamp() * 1e9)  # a naive time is local time, as the user typed it


def print_json(data: Any) -> None:
    console.out(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode(), highlight=False)


def local_time(unix_ns: int) -> str:
    return datetime.fromtimestamp(unix_ns / 1e9).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
