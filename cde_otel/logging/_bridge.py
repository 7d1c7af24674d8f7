"""Bridge to OpenTelemetry logs, one LogRecord per event.

Two paths, disjoint by construction, so nothing is emitted twice:

* structlog events: ``StructlogBridge`` (contrib's ``StructlogProcessor`` translation, kept in
  :mod:`cde_otel._structlog_otel`) sits in the structlog chain — the application's own,
  right before its renderer — and emits while the event is still a dict. It never changes the
  event: what the application prints stays what it was.
* stdlib records: ``ForeignRecordBridge`` (``LoggingHandler`` of opentelemetry-instrumentation-logging)
  sees every record the application's loggers handle, skipping those structlog hands to stdlib
  (emitted already) and OpenTelemetry's own (an exporter failure logged and exported again would loop).

Both read the current OpenTelemetry context at call time, so each LogRecord carries the trace
and span id of the active span, and the correlation id. Bodies, attributes and exceptions
(``exception.message``, ``exception.stacktrace``) are redacted with :mod:`cde_otel.redaction`,
cut to a few KB (:data:`~cde_otel.redaction.TEXT_LIMIT`) and reduced to values OpenTelemetry
accepts; structlog's plumbing (``_record``, ``_logger``...) and the trace ids stamped on stdlib
records never become attributes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from opentelemetry._logs import Logger, LoggerProvider, LogRecord, NoOpLogger
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from structlog.typing import WrappedLogger

from cde_otel._correlation import current_correlation_id
from cde_otel._otel_compat import logging_handler_has_attribute_hook
from cde_otel._reentry import GUARD
from cde_otel._structlog_otel import StructlogProcessor
from cde_otel._swallowed import swallowed
from cde_otel.logging._deferred import DeferredRecords
from cde_otel.logging._processors import otel_attribute_value
from cde_otel.logging._records import is_otel_logging_handler
from cde_otel.redaction import bounded_stack, bounded_text, redact_value
from cde_otel.semconv import RECORD_CORRELATION_ID, RECORD_STAMPS

_OWN_LOGGERS = ("opentelemetry",)
# Attributes every bridged record carries in its own fields (trace context) or that only echo it.
_NOT_ATTRIBUTES = frozenset({"logger", "trace_id", "span_id", *RECORD_STAMPS})
# Set by the contrib handler from the record's own fields (where it was logged), never the host's data.
_CODE_ATTRIBUTES = frozenset({"code.file.path", "code.function.name", "code.line.number"})


def _attributes(raw: dict[str, Any], redact_keys: tuple[str, ...], content_max_length: int | None) -> dict[str, Any]:
    """Redacted, OTel-valid attributes, with the current correlation id; never the caller's dict."""
    cleaned: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None or key.startswith("_") or key in _NOT_ATTRIBUTES:
            continue
        if key in _CODE_ATTRIBUTES:
            cleaned[key] = value
        elif key == "exception.stacktrace":
            cleaned[key] = bounded_stack(str(value))
        elif key == "exception.message":
            cleaned[key] = bounded_text(str(value))
        else:
            cleaned[key] = otel_attribute_value(redact_value(key, value, redact_keys, content_max_length))
    stamped = raw.get(RECORD_CORRELATION_ID)  # a stdlib record's stamp: the id when it was logged
    correlation_id = stamped if isinstance(stamped, str) else current_correlation_id()
    if correlation_id:
        cleaned.setdefault("correlation_id", correlation_id)
    return cleaned


class StructlogBridge(StructlogProcessor):
    """``StructlogProcessor`` that never raises into the app, never changes the event, and emits only
    redacted, OTel-valid attributes. ``_cde_otel`` marks it in a chain (inserted once, removed exactly)."""

    _cde_otel = True

    def __init__(
        self, logger_provider: LoggerProvider, redact_keys: Iterable[str] = (), content_max_length: int | None = None
    ) -> None:
        super().__init__(logger_provider=logger_provider)
        self._redact_keys = tuple(redact_keys)
        self._content_max_length = content_max_length
        self._loggers: dict[str, Logger] = {}

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        if GUARD.active:  # logged by code cde-otel is running while it records: never bridged again
            return event_dict
        GUARD.active = True
        try:
            name = getattr(logger, "name", None) or event_dict.get("logger") or "structlog"
            otel_logger = self._loggers.get(name)
            if otel_logger is None:
                otel_logger = self._loggers[name] = self._logger_provider.get_logger(name)
            if not isinstance(otel_logger, NoOpLogger):
                otel_logger.emit(self._translate(event_dict, method_name))
        except Exception:  # a telemetry failure must not break the caller's log call
            swallowed("logging.structlog_bridge", logging.getLogger(__name__), "structlog event not bridged to OTel")
        finally:
            GUARD.active = False
        return event_dict

    def _translate(self, event_dict: dict[str, Any], method_name: str | None = None) -> LogRecord:
        record: LogRecord = super()._translate(event_dict, method_name)
        if isinstance(record.body, str):
            record.body = bounded_text(record.body)
        return record

    def _get_attributes(self, event_dict: dict[str, Any]) -> dict[str, Any]:  # type: ignore[override]
        raw: dict[str, Any] = StructlogProcessor._get_attributes(event_dict)
        return _attributes(raw, self._redact_keys, self._content_max_length)


class _ScrubbedMessage(logging.Formatter):
    """The LogRecord body: the message alone (no traceback, which goes to attributes), secrets masked.

    ``rendered`` is a deferred record's message as rendered when it was logged (its arguments may have
    changed since), set by whichever thread drains the deferred records (one at a time); it applies to
    that record only, so a record bridged meanwhile on a caller's thread renders its own.
    """

    def __init__(self) -> None:
        super().__init__()
        self.rendered: tuple[logging.LogRecord, str] | None = None

    def format(self, record: logging.LogRecord) -> str:
        rendered = self.rendered
        return bounded_text(rendered[1] if rendered is not None and rendered[0] is record else record.getMessage())


class ForeignRecordBridge(LoggingHandler):
    """``LoggingHandler`` for stdlib records (not structlog's, nor OpenTelemetry's), redacted, with correlation id."""

    def __init__(
        self,
        logger_provider: LoggerProvider,
        redact_keys: Iterable[str] = (),
        content_max_length: int | None = None,
        *,
        deferred: bool = False,
    ) -> None:
        super().__init__(logger_provider=logger_provider)
        self._message = _ScrubbedMessage()
        self.setFormatter(self._message)
        # For a provider that batches anyway: translated off the caller's thread (see ._deferred).
        self._deferred = DeferredRecords(self._bridge_now) if deferred else None
        self._redact_keys = tuple(redact_keys)
        self._content_max_length = content_max_length
        self._loggers: dict[str, Logger] = {}  # per logger name: the host's names are few and fixed
        # A contrib release without the hooks this bridge overrides would export the records
        # unredacted: then none is bridged, and the failure is counted once.
        self._supported = logging_handler_has_attribute_hook()
        if not self._supported:
            swallowed("logging.bridge_unsupported", logging.getLogger(__name__), "stdlib records not bridged to OTel")

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._supported or record.name.startswith(_OWN_LOGGERS):
            return False
        if isinstance(record.msg, dict) and hasattr(record, "_logger"):
            return False  # structlog's ProcessorFormatter.wrap_for_formatter made it: bridged already
        # Checked per record: opentelemetry-instrument adds its handler after configure() ran.
        if otel_handler_on_root_takes(record):
            return False
        return not self.filters or bool(super().filter(record))

    def handle(self, record: logging.LogRecord) -> bool:
        """``Handler.handle`` without the handler's lock: :meth:`emit` queues the record or hands it to
        the SDK's logger, both safe from any thread, so nothing needs serialising here."""
        if self.filter(record):
            self.emit(record)
            return True
        return False

    def _get_attributes(self, record: logging.LogRecord) -> tuple[dict[str, Any], str | None]:
        raw, event_name = super()._get_attributes(record)
        return _attributes(raw, self._redact_keys, self._content_max_length), event_name

    def emit(self, record: logging.LogRecord) -> None:
        if self._deferred is None or not self._deferred.add(record):
            self._bridge_now(record)

    def drain(self, timeout_s: float | None = None) -> bool:
        """Bridges the records still waiting (deferred); True when none is left."""
        return self._deferred is None or self._deferred.drain(timeout_s)

    def flush(self) -> None:
        self.drain()
        super().flush()

    def close(self) -> None:
        if self._deferred is not None:
            self._deferred.close()
        super().close()

    def _bridge_now(self, record: logging.LogRecord, message: str | None = None) -> None:
        # The contrib emit() without its per-record logger lookup and re-entry context variable: the
        # re-entry guard stops any record logged meanwhile before it reaches a handler of ours.
        was_active, GUARD.active = GUARD.active, True  # what translating calls is never recorded
        if message is not None:  # a deferred record: its message as it was, without copying the record
            self._message.rendered = (record, message)
        try:
            otel_logger = self._loggers.get(record.name)
            if otel_logger is None:
                otel_logger = self._loggers[record.name] = self._logger_provider.get_logger(record.name)
            if not isinstance(otel_logger, NoOpLogger):
                otel_logger.emit(self._translate(record))
        except Exception:
            self.handleError(record)
        finally:
            GUARD.active = was_active
            if message is not None:
                self._message.rendered = None


def otel_handler_on_root_takes(record: logging.LogRecord) -> bool:
    """Whether an OpenTelemetry ``LoggingHandler`` on the root logger - the logging
    instrumentation's, or the SDK's deprecated one (``OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED``)
    - sends this record already (bridging it too would send it twice). Only a record that reaches
    root does: those of a logger that does not propagate (uvicorn's, FastMCP's) stop on the way,
    and only the bridge sends them."""
    for handler in logging.root.handlers:
        if record.levelno >= handler.level and is_otel_logging_handler(handler):
            break
    else:
        return False
    logger = logging.Logger.manager.loggerDict.get(record.name)
    while isinstance(logger, logging.Logger) and logger is not logging.root:
        if not logger.propagate:
            return False
        logger = logger.parent
    return True
