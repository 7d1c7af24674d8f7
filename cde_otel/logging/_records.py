"""The host's stdlib log records: stamped with trace ids, and seen by cde-otel's handlers whatever the
host does with its own handlers (upstream's ``configure_logging`` replaces the root
handlers after cde-otel has started).

Two hooks, each held by an object of its own (:class:`Stamping`, :class:`Delivery`) that the
attachment owns: :func:`cde_otel.logging.attach_logging` installs them, its ``detach()`` removes
them. The hooks are closures over those objects; the stdlib keeps the one current hook of each
kind (a process has one record factory and one ``Logger.callHandlers``), so nothing else does:

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


# -- delivery --------------------------------------------------------------------------------------
class Delivery:
    """The ``Logger.callHandlers`` hook of one attachment: its handlers see every record handled.

    The hook is a closure over this object; the process-wide "current one" is the stdlib's own
    ``logging.Logger.callHandlers`` (a process has one), so :meth:`installed` reads it there.
    Installing while another attachment's hook is on top takes that one's place (its handlers
    stop seeing records): one set of our handlers at a time, so nothing is bridged twice.
    """

    def __init__(self, handlers: Sequence[logging.Handler], *, bridged: bool) -> None:
        self.handlers = tuple(handlers)
        self.bridged = bridged and bool(self.handlers)  # every stdlib record reaches OpenTelemetry logs
        self.original: Callable[[logging.Logger, logging.LogRecord], None] | None = None
        self.active = False  # its hook is in the chain, and restores ``original`` when removed
        self.hook = self._make_hook()

    def _make_hook(self) -> Callable[[logging.Logger, logging.LogRecord], None]:
        def call_handlers(logger: logging.Logger, record: logging.LogRecord) -> None:
            try:
                self.original(logger, record)  # type: ignore[misc]  # set before this is installed
            finally:
                handlers = self.handlers
                if handlers and not GUARD.active:
                    _deliver(handlers, record)

        call_handlers.cde_otel_owner = self  # type: ignore[attr-defined]  # how installed() finds it
        return call_handlers

    @staticmethod
    def installed() -> Delivery | None:
        """The delivery whose hook is ``Logger.callHandlers`` now (through ``__wrapped__`` wrappers)."""
        owner = _owner(logging.Logger.callHandlers)
        return owner if isinstance(owner, Delivery) else None

    @classmethod
    def replace(cls, handlers: Sequence[logging.Handler], *, bridged: bool) -> Delivery | None:
        """Removes the installed delivery, and installs one for ``handlers`` if any (returned)."""
        current = cls.installed()
        if current is not None:
            current.remove()
        if not handlers:
            return None
        delivery = cls(handlers, bridged=bridged)
        delivery.install()
        return delivery

    def install(self) -> None:
        if self.active:
            return
        current = Delivery.installed()
        if current is not None:
            current.handlers, current.bridged = (), False  # one set of our handlers at a time
        if current is not None and current.active and logging.Logger.callHandlers is current.hook:
            self.original, current.active = current.original, False  # takes its place in the chain
        else:
            self.original = logging.Logger.callHandlers
        logging.Logger.callHandlers = self.hook  # type: ignore[method-assign,assignment]
        self.active = True

    def remove(self) -> None:
        """Restores the hook found at :meth:`install`; when wrapped since, ours stays in the chain, inert."""
        if self.active and logging.Logger.callHandlers is self.hook:
            logging.Logger.callHandlers = self.original  # type: ignore[method-assign,assignment]
        self.active = False
        self.handlers, self.bridged = (), False


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


def records_bridged() -> bool:
    """True while every stdlib record reaches OpenTelemetry logs through a handler of ours."""
    current = Delivery.installed()
    return current is not None and current.bridged


def deliver_to(handlers: Sequence[logging.Handler], *, bridged: bool) -> None:
    """Makes ``handlers`` see every record the process's loggers handle (``()``: none), in place of the
    installed delivery. For wiring by hand; an attachment holds its :class:`Delivery` (``replace``)."""
    Delivery.replace(handlers, bridged=bridged)


# -- stamping --------------------------------------------------------------------------------------
class Stamping:
    """The log record factory of one attachment: it stamps the ids on every new record.

    Like :class:`Delivery`, the factory is a closure over this object, and the current one is the
    stdlib's (``logging.getLogRecordFactory()``, one per process).
    """

    def __init__(self, service_name: str = "") -> None:
        self.service_name = service_name
        self.stamping = True
        self.previous: Callable[..., logging.LogRecord] | None = None
        self.active = False  # its factory is in the chain, and restores ``previous`` when removed
        # The stamps of the last context seen: records logged in a row in one span (the usual case)
        # share one immutable Context object, so its ids are formatted once. Replaced whole, never
        # mutated: thread-safe.
        self._last: tuple[object, dict[str, Any]] = (None, {})
        self.factory = self._make_factory()

    def _make_factory(self) -> Callable[..., logging.LogRecord]:
        def stamped_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = self.previous(*args, **kwargs)  # type: ignore[misc]  # set before this is installed
            if self.stamping:
                ctx = context.get_current()
                cached = self._last
                if cached[0] is not ctx:
                    cached = self._stamps_in(ctx)
                record.__dict__.update(cached[1])
            return record

        stamped_record.cde_otel_owner = self  # type: ignore[attr-defined]  # how installed() finds it
        return stamped_record

    def _stamps_in(self, ctx: context.Context) -> tuple[object, dict[str, Any]]:
        span_context = get_current_span(ctx).get_span_context()
        correlation_id = baggage.get_baggage(CORRELATION_KEY, ctx)
        valid = span_context.is_valid
        stamps: dict[str, Any] = {
            RECORD_TRACE_ID: format(span_context.trace_id, "032x") if valid else "0",
            RECORD_SPAN_ID: format(span_context.span_id, "016x") if valid else "0",
            RECORD_TRACE_SAMPLED: span_context.trace_flags.sampled if valid else False,
            RECORD_SERVICE_NAME: self.service_name,
            RECORD_CORRELATION_ID: correlation_id if isinstance(correlation_id, str) else "",
        }
        self._last = (ctx, stamps)
        return self._last

    @staticmethod
    def installed() -> Stamping | None:
        """The stamping whose factory is the process's log record factory now."""
        owner = _owner(logging.getLogRecordFactory())
        return owner if isinstance(owner, Stamping) else None

    @classmethod
    def replace(cls, on: bool, service_name: str = "") -> Stamping | None:
        """Removes the installed stamping, and installs a new one if ``on`` (returned)."""
        current = cls.installed()
        if current is not None:
            current.remove()
        if not on:
            return None
        stamping = cls(service_name)
        stamping.install()
        return stamping

    def install(self) -> None:
        if self.active:
            return
        current = Stamping.installed()
        if current is not None:
            current.stamping = False  # one stamping at a time
        if current is not None and current.active and logging.getLogRecordFactory() is current.factory:
            self.previous, current.active = current.previous, False  # takes its place in the chain
        else:
            self.previous = logging.getLogRecordFactory()
        logging.setLogRecordFactory(self.factory)
        self.active = True

    def remove(self) -> None:
        """Restores the factory found at :meth:`install`; when wrapped since, ours stays in the chain, inert."""
        if self.active and self.previous is not None and logging.getLogRecordFactory() is self.factory:
            logging.setLogRecordFactory(self.previous)
        self.active = self.stamping = False


def stamp_records(on: bool, service_name: str = "") -> None:
    """Starts stamping every new stdlib record with the current trace and correlation ids, in place of
    the installed stamping (or stops it). For wiring by hand; an attachment holds its :class:`Stamping`."""
    Stamping.replace(on, service_name)


def _owner(hook: object) -> object | None:
    """The Delivery or Stamping a hook belongs to, looking through ``functools.wraps`` wrappers."""
    for _ in range(8):  # a wrapper chain is short; never loop on a cyclic __wrapped__
        owner: object | None = getattr(hook, "cde_otel_owner", None)
        if owner is not None:
            return owner
        hook = getattr(hook, "__wrapped__", None)
        if hook is None:
            return None
    return None


def is_otel_logging_handler(handler: logging.Handler) -> bool:
    """OpenTelemetry's own ``LoggingHandler`` (the SDK's or contrib's, e.g. ``opentelemetry-instrument``'s)."""
    kind = type(handler)
    return kind.__name__ == "LoggingHandler" and kind.__module__.startswith("opentelemetry.")
