"""The process-wide health entry points: ``cde_getHealth`` (an MCP tool), ``get_health_status``.

    from cde_otel.health import cde_getHealth

    cde_getHealth()                    # JSON text of the current directory's project
    cde_getHealth("/path/to/project")

Each project path gets one process-wide :class:`HealthMonitor` (its alert history and
throughput need one), created on first use. The least recently used monitors are dropped
beyond :data:`MAX_DEFAULT_MONITORS`, so a server asked about many paths stays bounded.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from cde_otel._exceptions import CDEError, error_for
from cde_otel._version import __version__
from cde_otel.errors import ErrorFormatter
from cde_otel.health._monitor import HealthMonitor

#: Process-wide monitors kept (one per project path, least recently used dropped first).
MAX_DEFAULT_MONITORS = 32


class DefaultMonitors:
    """The process-wide monitors, one per project path, the least recently used dropped beyond ``limit``.

    One per process (:data:`DEFAULT_MONITORS`): ``cde_getHealth`` is a plain function an MCP server
    registers, with nowhere else to keep a monitor's alert history between calls. A monitor holds
    nothing of a telemetry runtime: it reads the current one through :mod:`cde_otel.health.sources`
    at each call.
    """

    def __init__(self, limit: int = MAX_DEFAULT_MONITORS) -> None:
        self.limit = limit
        self._monitors: OrderedDict[Path, HealthMonitor] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, project_path: str | os.PathLike[str] | None = None) -> HealthMonitor:
        path = Path(project_path if project_path is not None else os.getcwd()).expanduser().resolve()
        with self._lock:
            monitor = self._monitors.get(path)
            if monitor is None:
                monitor = self._monitors[path] = HealthMonitor(path)
                while len(self._monitors) > self.limit:
                    self._monitors.popitem(last=False)
            else:
                self._monitors.move_to_end(path)
            return monitor


DEFAULT_MONITORS = DefaultMonitors()


def default_monitor(project_path: str | os.PathLike[str] | None = None) -> HealthMonitor:
    """The process-wide monitor of ``project_path`` (default: the current directory)."""
    return DEFAULT_MONITORS.get(project_path)


def get_health_status(project_path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The status of ``project_path`` (default: the current directory) from the default monitor."""
    return default_monitor(project_path).get_status()


def cde_getHealth(project_path: str | None = None) -> str:
    """Health status as pretty JSON, for an MCP tool. Never raises: failures come back coded."""
    try:
        status = get_health_status(project_path)
    except Exception as exc:  # an MCP tool must answer, not crash the server
        status = {"status": "unhealthy", "version": __version__, "error": error_summary(exc)}
    return json.dumps(status, indent=2, default=str)


def error_summary(exc: BaseException) -> dict[str, Any]:
    """The user-facing error JSON of ``exc`` (``ErrorFormatter.to_json``: coded, no traceback)."""
    try:
        return ErrorFormatter.to_json(exc)
    except Exception:  # the formatter failing must not turn a 500 into a dropped connection
        error = exc if isinstance(exc, CDEError) else error_for("E902", f"unexpected {type(exc).__name__}")
        return {"code": error.code, "name": error.name, "message": error.message, "recoverable": error.recoverable}
