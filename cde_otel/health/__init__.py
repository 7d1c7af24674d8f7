"""Health monitoring: status, checks, percentiles, alerts and HTTP endpoints (PROD-03).

    from cde_otel.health import HealthMonitor, cde_getHealth, start_health_server

    HealthMonitor("/path/to/project").get_status()  # dict: status, metrics, checks, alerts
    cde_getHealth()                                 # the same as JSON, for an MCP tool (cwd project)
    server = start_health_server(port=8765)         # /health, /health/ready, /health/metrics
    server.stop()
    operation_stats(reader)                         # P50/P95/P99 per operation from a metric reader

Percentiles and rates are read from the ``cde.operation.duration`` histogram that the
instrumentation records, through a pull metric reader on the same MeterProvider, never
from a second bookkeeping. Health never imports telemetry: ``cde_otel.telemetry.configure()``
registers that reader and its export status here (:mod:`cde_otel.health.sources`).

Inside: ``_probes`` (disk, memory, writability; TTL cache), ``_metrics`` (operation
statistics), ``_percentiles`` (quantiles the way Prometheus computes them), ``_alerts``
(the check and alert rules, pure), ``_monitor`` (:class:`HealthMonitor`, which ties them
together), ``_mcp_tool`` (the process-wide entry points), ``_http`` (the HTTP it speaks) and
``_server`` (the HTTP server).

Names are imported on first use, as in ``cde_otel`` itself: ``configure()`` registers
with :mod:`cde_otel.health.sources` without loading the monitor, the server, the core or
the error catalog (and safely from inside an import of any of them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cde_otel._lazy import lazy_exports

if TYPE_CHECKING:
    from cde_otel.health._mcp_tool import cde_getHealth, default_monitor, get_health_status
    from cde_otel.health._metrics import MetricsSnapshot, metric_points, operation_stats
    from cde_otel.health._monitor import HealthMonitor
    from cde_otel.health._percentiles import OperationStats
    from cde_otel.health._probes import MIB, DiskReading, MemoryReading
    from cde_otel.health._server import HealthServer, start_health_server
    from cde_otel.health.sources import register_telemetry, unregister_telemetry

_EXPORTS: dict[str, str] = {
    "cde_getHealth": "cde_otel.health._mcp_tool",
    "default_monitor": "cde_otel.health._mcp_tool",
    "get_health_status": "cde_otel.health._mcp_tool",
    "MetricsSnapshot": "cde_otel.health._metrics",
    "metric_points": "cde_otel.health._metrics",
    "operation_stats": "cde_otel.health._metrics",
    "HealthMonitor": "cde_otel.health._monitor",
    "OperationStats": "cde_otel.health._percentiles",
    "MIB": "cde_otel.health._probes",
    "DiskReading": "cde_otel.health._probes",
    "MemoryReading": "cde_otel.health._probes",
    "HealthServer": "cde_otel.health._server",
    "start_health_server": "cde_otel.health._server",
    "register_telemetry": "cde_otel.health.sources",
    "unregister_telemetry": "cde_otel.health.sources",
}

__all__ = [
    "MIB",
    "DiskReading",
    "HealthMonitor",
    "HealthServer",
    "MemoryReading",
    "MetricsSnapshot",
    "OperationStats",
    "cde_getHealth",
    "default_monitor",
    "get_health_status",
    "metric_points",
    "operation_stats",
    "register_telemetry",
    "start_health_server",
    "unregister_telemetry",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
