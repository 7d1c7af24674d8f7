"""The host's stdlib log records: stamped with trace ids, and seen by cde-otel's handlers whatever the
host does with its own handlers (upstream's ``configure_logging`` replaces the root
handlers after cde-otel has started).

Two process-wide hooks, installed by :func:`cde_otel.logging.attach_logging` and removed by its
``detach()``:

* **Stamping** — a log record factory (``logging.setLogRecordFactory``, wrapping the one in
  place) sets ``otelTraceID``, ``otelSpanID``, ``otelTraceSampled``, ``otelServiceName`` (the names
  ``opentelemetry-instrumentation-logging`` uses) and ``cde_correlation_id`` on every record, so a
  host can put ``%(otelTraceID)s`` in its own format. Outside a span they are ``"0"``/``False``/
  ``""``, so such a format never fails. The factory is not a handler: ``basicConfig(force=True)``,
  ``dictConfig`` or ``root.handlers = [...]`` leave it in place. A format string prints nothing
  new; a formatter that prints *every* record attribute (some JSON formatters) shows them too —
  ``CDE_OTEL_LOG_RECORD_IDS=false`` turns stamping off.
* **Delivery** — cde-otel's handlers (the OpenTelemetry logs bridge, the log file, the opt-in
  console) are never put in ``root.handlers``, where the host would see them and its logging
  set-up would remove them. ``logging.Logger.callHandlers`` — the one method through which every
  record a logger handles (level and filters passed, logger not disabled) reaches any handler —
  is wrapped instead: the host's handlers run exactly as before, first, then ours see the record
  when its level reaches theirs. Sentry's logging integration hooks the same method for the same
  reason. Records logged while cde-otel records (:mod:`cde_otel._reentry`) are not delivered to
  ours, so nothing loops. The cost is one Python call per handled record (``bench/bench_host_logging.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import baggage, context
from opentelemetry.trace import get_current_span

from cde_otel._reentry import GUARD
from cde_otel._swallowed import swallowed
from cde_otel.semconv import (
    CORRELATION_KEY,
    RECORD_CORRELATION_ID,
    RECORD_SERVICE_NAME,
    RECORD_SPAN_ID,
    RECORD_TRACE_ID,
    RECORD_TRACE_SAMPLED,
)

_ours: tuple[logging.Handler, ...] = ()
_bridged = False
_original_call_handlers: Callable[[logging.Logger, logging.LogRecord], None] | None = None
_previous_factory: Callable[..., logging.LogRecord] | None = None
_service_name = ""
_stamping = False


# -- delivery --------------------------------------------------------------------------------------
def _call_handlers(self: logging.Logger, record: logging.LogRecord) -> None:
    try:
        _original_call_handlers(self, record)  # type: ignore[misc]  # set before this is installed
    finally:
        handlers = _ours
        if handlers and not GUARD.active:
            _deliver(handlers, record)


def _deliver(handlers: Sequence[logging.Handler], record: logging.LogRecord) -> None:
    GUARD.active = True  # what our handlers call (json.dumps...) is never recorded
    try:
        for handler in handlers:
            if record.levelno >= handler.level:
                try:
                    handler.handle(record)
                except Exception:  # a failing handler of ours must never reach the host's log call
                    swallowed("logging.delivery", logging.getLogger("cde_otel.logging"), "cde-otel: %r failed", handler)
    finally:
        GUARD.active = False


def deliver_to(handlers: Sequence[logging.Handler], *, bridged: bool) -> None:
    """Makes ``handlers`` see every record the process's loggers handle (``()``: none)."""
    global _ours, _bridged, _original_call_handlers
    _ours, _bridged = tuple(handlers), bridged and bool(handlers)
    if _ours and _original_call_handlers is None:
        _original_call_handlers = logging.Logger.callHandlers
        logging.Logger.callHandlers = _call_handlers  # type: ignore[method-assign]
    elif not _ours and _original_call_handlers is not None and logging.Logger.callHandlers is _call_handlers:
        logging.Logger.callHandlers = _original_call_handlers  # type: ignore[method-assign,assignment]
        _original_call_handlers = None
    # Someone wrapped our hook since: it stays in the chain, delivering to nothing.


def records_bridged() -> bool:
    """True while every stdlib record reaches OpenTelemetry logs through a handler of ours."""
    return _bridged


# -- stamping --------------------------------------------------------------------------------------
def _stamped_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _previous_factory(*args, **kwargs)  # type: ignore[misc]  # set before this is installed
    if _stamping:
        ctx = context.get_current()
        cached = _last_stamps
        if cached[0] is not ctx:
            cached = _stamps_in(ctx)
        record.__dict__.update(cached[1])
    return record


# The stamps of the last context seen: records logged in a row in one span (the usual case) share one
# immutable Context object, so its ids are formatted once. Replaced whole, never mutated: thread-safe.
_last_stamps: tuple[object, dict[str, Any]] = (None, {})


def _stamps_in(ctx: context.Context) -> tuple[object, dict[str, Any]]:
    global _last_stamps
    span_context = get_current_span(ctx).get_span_context()
    correlation_id = baggage.get_baggage(CORRELATION_KEY, ctx)
    stamps: dict[str, Any] = {
        RECORD_TRACE_ID: format(span_context.trace_id, "032x") if span_context.is_valid else "0",
        RECORD_SPAN_ID: format(span_context.span_id, "016x") if span_context.is_valid else "0",
        RECORD_TRACE_SAMPLED: span_context.trace_flags.sampled if span_context.is_valid else False,
        RECORD_SERVICE_NAME: _service_name,
        RECORD_CORRELATION_ID: correlation_id if isinstance(correlation_id, str) else "",
    }
    _last_stamps = (ctx, stamps)
    return _last_stamps


def stamp_records(on: bool, service_name: str = "") -> None:
    """Starts (or stops) stamping every new stdlib record with the current trace and correlation ids."""
    global _previous_factory, _service_name, _stamping, _last_stamps
    _service_name, _stamping = service_name, on
    _last_stamps = (None, {})  # the service name may have changed
    if on and _previous_factory is None:
        _previous_factory = logging.getLogRecordFactory()
        logging.setLogRecordFactory(_stamped_record)
    elif not on and _previous_factory is not None and logging.getLogRecordFactory() is _stamped_record:
        logging.setLogRecordFactory(_previous_factory)
        _previous_factory = None
    # Someone wrapped our factory since: it stays in the chain, stamping nothing.
