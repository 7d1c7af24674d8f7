"""Bridge to OpenTelemetry logs with the contrib libraries, one LogRecord per event.

Two paths, disjoint by construction, so nothing is emitted twice:

* structlog events: ``StructlogProcessor`` (opentelemetry-instrumentation-structlog) sits in
  the structlog chain, after redaction, and emits while the event dict is still a dict.
* stdlib records from third-party code: ``LoggingHandler`` (opentelemetry-instrumentation-logging)
  on the root logger, with a filter that skips the records structlog hands to stdlib (they
  were emitted already) and OpenTelemetry's own records (an exporter failure logged and
  exported again would loop).

Both read the current OpenTelemetry context at call time, so each LogRecord carries the
trace and span id of the active span. Attributes are redacted and reduced to values
OpenTelemetry accepts; structlog's plumbing (``_record``, ``_logger``...) never leaks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry._logs import LoggerProvider
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.instrumentation.structlog import StructlogProcessor
from structlog.typing import WrappedLogger

from cde_otel.logging._processors import otel_attribute_value
from cde_otel.redaction import redact_value, scrub_text

_OWN_LOGGERS = ("opentelemetry",)


def _clean_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    return {
        key: otel_attribute_value(value)
        for key, value in attributes.items()
        if value is not None and not key.startswith("_")
    }


class StructlogBridge(StructlogProcessor):
    """``StructlogProcessor`` that never raises into the app and emits only OTel-valid attributes."""

    def __init__(self, logger_provider: LoggerProvider) -> None:
        super().__init__(logger_provider=logger_provider)  # type: ignore[no-untyped-call]  # untyped contrib

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        try:
            super().__call__(logger, method_name, event_dict)
        except Exception:  # a telemetry failure must not break the caller's log call
            logging.getLogger(__name__).debug("structlog event not bridged to OpenTelemetry", exc_info=True)
        return event_dict

    @staticmethod
    def _get_attributes(event_dict: dict[str, Any]) -> dict[str, Any]:
        attributes: dict[str, Any] = StructlogProcessor._get_attributes(event_dict)
        # The logger name is the LogRecord's instrumentation scope already.
        attributes.pop("logger", None)
        return _clean_attributes(attributes)


class _ScrubbedMessage(logging.Formatter):
    """The LogRecord body: the message alone (no traceback, which goes to attributes), secrets masked."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub_text(record.getMessage())


def is_structlog_record(record: logging.LogRecord) -> bool:
    """True for records that ``ProcessorFormatter.wrap_for_formatter`` produced (structlog events)."""
    return isinstance(record.msg, dict) and hasattr(record, "_logger")


class ForeignRecordBridge(LoggingHandler):
    """``LoggingHandler`` for third-party stdlib records only, with redaction and correlation id."""

    def __init__(
        self,
        logger_provider: LoggerProvider,
        current_correlation_id: Callable[[], str | None],
        redact_keys: Iterable[str] = (),
        content_max_length: int | None = None,
    ) -> None:
        super().__init__(logger_provider=logger_provider)
        self.setFormatter(_ScrubbedMessage())
        self._current_correlation_id = current_correlation_id
        self._redact_keys = tuple(redact_keys)
        self._content_max_length = content_max_length

    def filter(self, record: logging.LogRecord) -> bool:
        if is_structlog_record(record) or record.name.startswith(_OWN_LOGGERS):
            return False
        return bool(super().filter(record))

    def _get_attributes(self, record: logging.LogRecord) -> tuple[dict[str, Any], str | None]:
        attributes, event_name = super()._get_attributes(record)
        redacted = {
            key: redact_value(key, value, self._redact_keys, self._content_max_length)
            for key, value in attributes.items()
            if not key.startswith("exception.")
        }
        redacted.update((key, value) for key, value in attributes.items() if key.startswith("exception."))
        correlation_id = self._current_correlation_id()
        if correlation_id is not None:
            redacted["correlation_id"] = correlation_id
        return _clean_attributes(redacted), event_name

    def emit(self, record: logging.LogRecord) -> None:
        try:
            super().emit(record)
        except Exception:
            self.handleError(record)
