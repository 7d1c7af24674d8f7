"""Health monitoring: status, checks, percentiles, alerts and HTTP endpoints (PROD-03).

    from cde_otel.health import HealthMonitor, cde_getHealth, start_health_server

    HealthMonitor("/path/to/project").get_status()  # dict: status, metrics, checks, alerts
    cde_getHealth()                                 # the same as JSON, for an MCP tool (cwd project)
    server = start_health_server(port=8765)         # /health, /health/ready, /health/metrics
    server.stop()

Percentiles and rates are read from the ``cde.operation.duration`` histogram that the
instrumentation records, through a pull metric reader on the same MeterProvider
(``cde_otel.telemetry.health_metric_reader()``), never from a second bookkeeping.
See :mod:`cde_otel.health._monitor` for the check and alert rules.
"""

from cde_otel.health._monitor import HealthMonitor, cde_getHealth, default_monitor, get_health_status
from cde_otel.health._probes import DiskReading, MemoryReading
from cde_otel.health._server import HealthServer, start_health_server

__all__ = [
    "DiskReading",
    "HealthMonitor",
    "HealthServer",
    "MemoryReading",
    "cde_getHealth",
    "default_monitor",
    "get_health_status",
    "start_health_server",
]
