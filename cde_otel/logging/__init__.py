"""Structured logging (PROD-02): structlog JSON lines with trace correlation, bridged to OpenTelemetry logs.

Usage::

    from cde_otel.logging import get_logger, setup_logging

    setup_logging()  # level, format, file and rotation from the CDE_OTEL_LOG_* settings
    log = get_logger(__name__).bind(project_id=project.id)
    log.info("feature created", feature_id=feature.id)

One JSON object per line::

    {"event": "feature created", "project_id": "p1", "feature_id": "f1", "level": "info",
     "timestamp": "2026-01-05T10:00:00.123456Z", "logger": "app", "correlation_id": "...",
     "trace_id": "4bf9...", "span_id": "00f0..."}

* structlog goes through the stdlib ``logging`` module, so third-party records and structlog events
  share the handlers and the rendering (``structlog.stdlib.ProcessorFormatter``): JSON lines, or a
  readable console renderer when the stream is a terminal (``CDE_OTEL_LOG_FORMAT``).
* Every line carries ``trace_id``/``span_id`` of the active span, the ``correlation_id`` of the
  operation, and ``project_id``/``feature_id`` when bound (``bound_context(...)``) or on the span.
* Secrets and prompt text are masked (:mod:`cde_otel.redaction`).
* With a ``LoggerProvider`` (given, or configured globally) every event and every third-party record
  also becomes exactly one OpenTelemetry LogRecord with the span's trace context.
* ``CDE_OTEL_LOG_FILE`` adds a JSON file rotated daily (UTC midnight) or by size, keeping
  ``CDE_OTEL_LOG_RETENTION_DAYS`` rolled files.

``setup_logging`` may be called again (e.g. by ``cde_otel.telemetry.configure`` with its provider): the
new setup replaces the old one. ``reset_logging`` undoes it (tests).
"""

from __future__ import annotations

from structlog.contextvars import bound_contextvars as bound_context

from cde_otel.logging._config import get_logger, is_configured, log_file_handlers, reset_logging, setup_logging
from cde_otel.logging._operations import (
    OPERATIONS_LOGGER,
    OperationStart,
    log_operation_end,
    log_operation_start,
)

__all__ = [
    "OPERATIONS_LOGGER",
    "OperationStart",
    "bound_context",
    "get_logger",
    "is_configured",
    "log_file_handlers",
    "log_operation_end",
    "log_operation_start",
    "reset_logging",
    "setup_logging",
]
