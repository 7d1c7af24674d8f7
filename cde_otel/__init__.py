"""cde-otel: production readiness and OpenTelemetry for the CDE Orchestrator.

Turn everything on with one environment variable::

    CDE_OTEL_ENABLED=true python your_app.py

or programmatically::

    import cde_otel

    cde_otel.configure()          # providers, exporters, instrumentation, logging
    with cde_otel.correlation("request-42"):
        ...
    cde_otel.shutdown()           # flushes every signal

Names are imported lazily so that ``import cde_otel`` stays cheap (type checkers see the
real names). The layers and their order are described in docs/architecture.md and
checked by the import contract in ``pyproject.toml``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from cde_otel._lazy import lazy_exports
from cde_otel._version import __version__

if TYPE_CHECKING:
    from cde_otel._correlation import correlation, current_correlation_id
    from cde_otel.core import Feature, FeatureStatus, FileSystemProjectRepository, Project, ProjectStatus
    from cde_otel.errors import (
        ERROR_CODES,
        CDEError,
        CDESystemError,
        CircuitBreakerOpenError,
        ErrorFormatter,
        FeatureError,
        LocalTelemetryError,
        ProjectError,
        ReadOnlyModeError,
        StateError,
        ValidationError,
    )
    from cde_otel.health import HealthMonitor, cde_getHealth, get_health_status, start_health_server
    from cde_otel.instrumentation import CDEInstrumentor
    from cde_otel.logging import get_logger, setup_logging
    from cde_otel.resilience import CircuitBreaker, ResilientProjectRepository
    from cde_otel.settings import SETTINGS, Settings, load_settings
    from cde_otel.telemetry import configure, shutdown

# A library's warnings must not reach Python's last-resort stderr handler before logging is set up.
logging.getLogger("cde_otel").addHandler(logging.NullHandler())

_EXPORTS: dict[str, str] = {
    # core
    "Project": "cde_otel.core",
    "Feature": "cde_otel.core",
    "ProjectStatus": "cde_otel.core",
    "FeatureStatus": "cde_otel.core",
    "FileSystemProjectRepository": "cde_otel.core",
    # errors
    "CDEError": "cde_otel.errors",
    "ProjectError": "cde_otel.errors",
    "FeatureError": "cde_otel.errors",
    "LocalTelemetryError": "cde_otel.errors",
    "StateError": "cde_otel.errors",
    "ValidationError": "cde_otel.errors",
    "CDESystemError": "cde_otel.errors",
    "ReadOnlyModeError": "cde_otel.errors",
    "CircuitBreakerOpenError": "cde_otel.errors",
    "ERROR_CODES": "cde_otel.errors",
    "ErrorFormatter": "cde_otel.errors",
    # settings
    "SETTINGS": "cde_otel.settings",
    "Settings": "cde_otel.settings",
    "load_settings": "cde_otel.settings",
    # resilience
    "CircuitBreaker": "cde_otel.resilience",
    "ResilientProjectRepository": "cde_otel.resilience",
    # telemetry
    "configure": "cde_otel.telemetry",
    "shutdown": "cde_otel.telemetry",
    "correlation": "cde_otel._correlation",
    "current_correlation_id": "cde_otel._correlation",
    "CDEInstrumentor": "cde_otel.instrumentation",
    # logging
    "setup_logging": "cde_otel.logging",
    "get_logger": "cde_otel.logging",
    # health
    "HealthMonitor": "cde_otel.health",
    "get_health_status": "cde_otel.health",
    "cde_getHealth": "cde_otel.health",
    "start_health_server": "cde_otel.health",
}

__all__ = [
    "ERROR_CODES",
    "SETTINGS",
    "CDEError",
    "CDEInstrumentor",
    "CDESystemError",
    "CircuitBreaker",
    "CircuitBreakerOpenError",
    "ErrorFormatter",
    "Feature",
    "FeatureError",
    "FeatureStatus",
    "FileSystemProjectRepository",
    "HealthMonitor",
    "LocalTelemetryError",
    "Project",
    "ProjectError",
    "ProjectStatus",
    "ReadOnlyModeError",
    "ResilientProjectRepository",
    "Settings",
    "StateError",
    "ValidationError",
    "__version__",
    "cde_getHealth",
    "configure",
    "correlation",
    "current_correlation_id",
    "get_health_status",
    "get_logger",
    "load_settings",
    "setup_logging",
    "shutdown",
    "start_health_server",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
