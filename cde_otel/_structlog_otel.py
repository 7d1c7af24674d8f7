"""A structlog event as an OpenTelemetry ``LogRecord``: what contrib's ``StructlogProcessor`` does.

The translation of ``opentelemetry-instrumentation-structlog`` (body = ``event``; severity from
``level`` or the method name; ``timestamp`` as UNIX seconds or ISO 8601 with a zone; the other keys
as attributes; ``exc_info``/``exception`` as ``exception.*``; the current context), written here
because that package pins ``opentelemetry-instrumentation`` exactly and its releases lag the SDK's:
as a required dependency it stopped cde-otel from being installed beside a framework that wants the
newest OpenTelemetry API. Same interface (``_translate``, ``_get_attributes``), so
``cde_otel.logging``'s bridge builds on it as it did on contrib's.
"""

from __future__ import annotations

import sys
import traceback
from datetime import datetime
from time import time_ns
from typing import Any

from opentelemetry._logs import LoggerProvider, LogRecord, SeverityNumber, get_logger_provider
from opentelemetry.context import get_current

# structlog's plumbing and the fields that become the record's own (body, severity, time, exception).
_RESERVED = frozenset({"event", "level", "timestamp", "exc_info", "exception", "_record", "_logger", "_name"})
_SEVERITY = {
    "debug": (SeverityNumber.DEBUG, "DEBUG"),
    "info": (SeverityNumber.INFO, "INFO"),
    "warning": (SeverityNumber.WARN, "WARN"),
    "warn": (SeverityNumber.WARN, "WARN"),
    "error": (SeverityNumber.ERROR, "ERROR"),
    "critical": (SeverityNumber.FATAL, "FATAL"),
    "fatal": (SeverityNumber.FATAL, "FATAL"),
}


def _timestamp_ns(value: Any) -> int | None:
    """structlog's ``TimeStamper``: UNIX seconds, or ISO 8601 with a zone; else None (the SDK's time)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return int(value * 1e9)
    if isinstance(value, str):
        text = value[:-1] + "+00:00" if value.endswith("Z") else value
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
        return int(moment.timestamp() * 1e9) if moment.tzinfo is not None else None
    return None


class StructlogProcessor:
    """Translates structlog event dicts into OpenTelemetry log records (the caller emits them)."""

    def __init__(self, logger_provider: LoggerProvider | None = None) -> None:
        self._logger_provider = logger_provider or get_logger_provider()

    @staticmethod
    def _get_attributes(event_dict: dict[str, Any]) -> dict[str, Any]:
        attributes = {key: value for key, value in event_dict.items() if key not in _RESERVED}
        exc_info = event_dict.get("exc_info")
        if exc_info is True:
            exc_info = sys.exc_info()
        elif isinstance(exc_info, BaseException):
            exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
        if isinstance(exc_info, tuple) and len(exc_info) == 3:
            kind, error, trace = exc_info
            if kind is not None:
                attributes["exception.type"] = kind.__name__
            if error is not None and error.args:
                attributes["exception.message"] = str(error.args[0])
            if trace is not None:
                attributes["exception.stacktrace"] = "".join(traceback.format_exception(kind, error, trace))
        rendered = event_dict.get("exception")
        if isinstance(rendered, str) and "exception.stacktrace" not in attributes:
            attributes["exception.stacktrace"] = rendered  # structlog's ExceptionRenderer ran already
        return attributes

    def _translate(self, event_dict: dict[str, Any], method_name: str | None = None) -> LogRecord:
        level = event_dict.get("level")
        if not isinstance(level, str) or not level:
            level = method_name
        known = _SEVERITY.get(level.lower()) if isinstance(level, str) else None
        if known is None:
            severity_number = SeverityNumber.UNSPECIFIED
            severity_text = level.upper() if isinstance(level, str) else None
        else:
            severity_number, severity_text = known
        return LogRecord(
            timestamp=_timestamp_ns(event_dict.get("timestamp")),
            observed_timestamp=time_ns(),
            context=get_current(),
            severity_text=severity_text,
            severity_number=severity_number,
            body=event_dict.get("event"),
            attributes=self._get_attributes(event_dict),
        )
