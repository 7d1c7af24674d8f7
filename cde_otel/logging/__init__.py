"""Logging (PROD-02): operation lines, the host's records in OpenTelemetry logs, structured JSON lines.

What goes where, with ``CDE_OTEL_ENABLED=true`` (``configure()`` calls :func:`attach_logging`):

* **The span** is the record of every operation: outcome (``cde.outcome``, ``error.type``, ``cde.error.code``), ids,
  duration (its own start and end times — the same interval the ``cde.operation.duration``
  histogram records).
* **A JSON line** per operation (:class:`OperationEvents`) where a log file
  (``CDE_OTEL_LOG_FILE``) or the console (``CDE_OTEL_LOG_CONSOLE``, off by default) is configured.
* **An OpenTelemetry log record** per failed or slow operation, per stdlib record of the host
  (stamped with trace ids, delivered even after the host replaced its root handlers) and per
  structlog event of the host (a bridge inserted into its chain, changing nothing it prints).

One way in per audience (docs/logging.md):

* **automatic**: ``CDE_OTEL_ENABLED=true`` (or ``cde_otel.configure()``) calls :func:`attach_logging`;
* **an application** that instruments by hand calls :func:`attach_logging` once (``log_file=``,
  ``console=``, ``level=`` or the ``CDE_OTEL_LOG_*`` variables); ``Attached.detach()`` undoes it;
* **wiring it yourself**: :func:`processors` (correlation id, trace ids, redaction) and
  :func:`bridge` (structlog events to OpenTelemetry logs) in your structlog chain, :func:`handler`
  (stdlib records to OpenTelemetry logs) on your logger::

    structlog.configure(processors=[
        structlog.processors.add_log_level,
        *cde_otel.logging.processors(),        # correlation_id, trace_id, span_id, secrets masked
        cde_otel.logging.bridge(),             # each event also an OpenTelemetry log record
        structlog.processors.JSONRenderer(),
    ])
    logging.getLogger().addHandler(cde_otel.logging.handler())

The host's logging is never changed: no level, no handler removed, nothing printed unless asked.
``setup_logging``/``reset_logging`` (cde-otel owning the application's logging) are deprecated and
kept for the callers they have. Lines carry ``trace_id``/``span_id`` of the active span, the
``correlation_id``, and ``project_id``/``feature_id`` when bound or on the span; secrets and
prompt text are masked (:mod:`cde_otel.redaction`); ``CDE_OTEL_LOG_FILE`` rotates daily (UTC) or by
size, safely with several writer processes.
"""

from __future__ import annotations

from structlog.contextvars import bound_contextvars as bound_context

from cde_otel.logging._attach import Attached, attach_logging, bridge, handler, processors
from cde_otel.logging._config import get_logger, is_configured, log_file_handlers, reset_logging, setup_logging
from cde_otel.logging._host import has_handler, tell_host
from cde_otel.logging._operations import OperationEvents
from cde_otel.logging._sinks import OPERATIONS_LOGGER, HandlerSink, LineSink, StreamSink

__all__ = [
    "OPERATIONS_LOGGER",
    "Attached",
    "HandlerSink",
    "LineSink",
    "OperationEvents",
    "StreamSink",
    "attach_logging",
    "bound_context",
    "bridge",
    "get_logger",
    "handler",
    "has_handler",
    "is_configured",
    "log_file_handlers",
    "processors",
    "reset_logging",
    "setup_logging",
    "tell_host",
]
