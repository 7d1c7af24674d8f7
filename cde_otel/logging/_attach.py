"""``attach_logging``: what ``configure()`` (and so ``CDE_OTEL_ENABLED=true``) does to logging — add, never replace.

The host's logging stays the host's: no root level changed, no handler removed or added to
``root.handlers``, no structlog processor dropped, nothing printed unless asked. Added:

* the stdlib record hooks of :mod:`cde_otel.logging._records` (held by ``Attached.delivery`` and
  ``Attached.stamping``): every record stamped with the trace/span/correlation ids, and seen by
  cde-otel's handlers (below) even after the host replaced its root handlers;
* the OpenTelemetry logs bridge (``CDE_OTEL_LOGS_BRIDGE``, on by default): stdlib records through
  ``ForeignRecordBridge`` — except while an OpenTelemetry ``LoggingHandler`` is on the root
  logger (``opentelemetry-instrument``'s), which sends them already — and structlog events
  through ``StructlogBridge`` **inserted into the host's structlog chain** (or structlog's default
  chain when the host never configured it) right before its renderer, or before
  ``ProcessorFormatter.wrap_for_formatter``. The bridge never changes an event, so the host's
  lines print as before. Trace ids, the correlation id and redaction *on the host's lines*
  would change them: those are offered, not inserted (:func:`processors`);
* a filter on OpenTelemetry's propagation loggers that cuts long arguments: a client's 10 MB
  ``baggage``, rejected by a framework's propagator, is never quoted whole in a warning;
* the operation events (:class:`~cde_otel.logging.OperationEvents`): JSON lines to the log file
  (``CDE_OTEL_LOG_FILE``) and the console (``CDE_OTEL_LOG_CONSOLE``, off by default), which also
  get the host's stdlib records as JSON lines, at ``CDE_OTEL_LOG_LEVEL`` (a level of their own:
  the host's logger levels decide what reaches them).

``Attached.detach()`` (``shutdown()``) removes exactly what was added and writes what is pending.

If the host calls ``structlog.configure(processors=...)`` *after* ``configure()``, its new chain
has no bridge: add ``cde_otel.logging.bridge()`` to it (or configure telemetry after logging).
Loggers the host cached with ``cache_logger_on_first_use=True`` before ``configure()`` keep the
chain they were built with.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO, cast

import structlog
from structlog.typing import Processor

from cde_otel._correlation import PROPAGATION_LOGGERS, CappedArguments, current_correlation_id
from cde_otel._swallowed import swallowed
from cde_otel.logging._config import formatter, record_pre_chain, wants_console
from cde_otel.logging._handlers import file_handler
from cde_otel.logging._operations import OperationEvents
from cde_otel.logging._processors import add_trace_context, correlation_id_adder, redactor
from cde_otel.logging._records import Delivery, Stamping
from cde_otel.logging._sinks import HandlerSink, LineSink, StreamSink, follow_setup, stop_following
from cde_otel.settings import LogLevel, Settings, load_settings

if TYPE_CHECKING:
    from opentelemetry._logs import LoggerProvider

    from cde_otel.logging._bridge import StructlogBridge

_log = logging.getLogger("cde_otel.logging")


@dataclass
class Attached:
    """What one :func:`attach_logging` added, so that :meth:`detach` removes exactly that."""

    events: OperationEvents
    handlers: list[logging.Handler] = field(default_factory=list)  # delivered to; never in root.handlers
    structlog_bridge: StructlogBridge | None = None
    structlog_before: dict[str, Any] | None = None  # structlog's config before the bridge went in
    structlog_was_configured: bool = True
    capped: CappedArguments | None = None  # on OpenTelemetry's propagation loggers
    line_sinks: list[LineSink] = field(default_factory=list)  # also a standalone instrumentor's
    delivery: Delivery | None = None  # the Logger.callHandlers hook: our handlers see the host's records
    stamping: Stamping | None = None  # the record factory: the ids on every record

    def detach(self) -> None:
        """Writes the pending operation lines, removes every hook, closes our files. Never raises."""
        for step in (self.events.close, self._unhook, self._remove_structlog_bridge):
            try:
                step()
            except Exception:
                _log.debug("cde-otel: detaching logging: %s failed", step, exc_info=True)

    def drain(self, timeout_s: float | None = None) -> None:
        """Bridges the host's records still waiting for the bridge's thread. Never raises."""
        for handler in self.handlers:
            drain = getattr(handler, "drain", None)
            if drain is not None:
                try:
                    drain(timeout_s)
                except Exception:
                    _log.debug("cde-otel: draining %r failed", handler, exc_info=True)

    def _unhook(self) -> None:
        stop_following(self.line_sinks)
        if self.capped is not None:
            for name in PROPAGATION_LOGGERS:
                logging.getLogger(name).removeFilter(self.capped)
        for hook in (self.delivery, self.stamping):
            if hook is not None:
                hook.remove()
        for handler in self.handlers:
            handler.close()  # closes our log file; never the console stream

    def _remove_structlog_bridge(self) -> None:
        bridge, before = self.structlog_bridge, self.structlog_before
        if bridge is None or before is None:
            return
        config = structlog.get_config()
        if not any(p is bridge for p in config["processors"]):
            return  # the host configured structlog since: nothing of ours is left in it
        remaining = [p for p in config["processors"] if p is not bridge]
        unchanged = all(config[key] is value for key, value in before.items() if key != "processors")
        if not self.structlog_was_configured and unchanged:
            structlog.reset_defaults()  # we were the only ones to configure it
        else:
            structlog.configure(processors=remaining)


_GLOBAL: Any = object()  # attach_logging's default: the global LoggerProvider


def attach_logging(
    logger_provider: LoggerProvider | None = _GLOBAL,
    settings: Settings | None = None,
    *,
    stream: TextIO | None = None,
    log_file: str | os.PathLike[str] | None = None,
    console: bool | None = None,
    level: LogLevel | None = None,
    defer_records: bool = False,
) -> Attached:
    """Adds cde-otel's logging next to the application's (see the module docs); ``Attached.detach()`` undoes it.

    ``configure()`` (so ``CDE_OTEL_ENABLED=true``) calls it; an application that instruments by hand
    calls it once, with no argument or with the settings it would otherwise set in the environment::

        attached = cde_otel.logging.attach_logging(log_file="app.log")  # CDE_OTEL_LOG_FILE=app.log

    ``logger_provider``: where records are bridged (default: the global one; ``None``: no bridge).
    ``log_file``, ``console``, ``level`` override ``CDE_OTEL_LOG_FILE``, ``CDE_OTEL_LOG_CONSOLE``,
    ``CDE_OTEL_LOG_LEVEL``; ``stream`` is the console (default ``sys.stderr``). ``defer_records``:
    the host's records are bridged from a thread of ours, not the caller's - for a provider that
    batches them anyway, as ``configure()``'s own does (``Attached.drain()`` bridges what waits).
    """
    cfg = settings if settings is not None else load_settings()
    overrides: dict[str, Any] = {"log_file": os.fspath(log_file) if log_file is not None else None}
    overrides |= {"log_console": console, "log_level": level}
    cfg = dataclasses.replace(cfg, **{key: value for key, value in overrides.items() if value is not None})
    if logger_provider is _GLOBAL:
        from opentelemetry._logs import get_logger_provider

        logger_provider = get_logger_provider()
    pre_chain = record_pre_chain(cfg)
    handlers: list[logging.Handler] = []
    sinks: list[LineSink] = []
    if cfg.log_console:
        out = stream if stream is not None else sys.stderr
        console_handler = logging.StreamHandler(out)
        console_handler.setFormatter(formatter(wants_console(cfg.log_format, out), out, pre_chain))
        handlers.append(console_handler)
        sinks.append(StreamSink(out))
    if cfg.log_file:
        rotated = file_handler(cfg.log_file, cfg.log_rotation, cfg.log_max_bytes, cfg.log_retention_days)
        rotated.setFormatter(formatter(False, None, pre_chain))
        handlers.append(rotated)
        sinks.append(HandlerSink(rotated))
    attached = Attached(OperationEvents.from_settings(cfg, sinks, logger_provider), line_sinks=sinks)
    bridged = False
    if logger_provider is not None and cfg.logs_bridge:
        from cde_otel.logging._bridge import ForeignRecordBridge, StructlogBridge

        content_max_length = cfg.capture_max_length if cfg.capture_content else None
        # Always in place: it stands aside, record by record, while an OpenTelemetry LoggingHandler is
        # on root (opentelemetry-instrument's), and takes over if the host's set-up removes that one.
        handlers.append(
            ForeignRecordBridge(logger_provider, cfg.redact_keys, content_max_length, deferred=defer_records)
        )
        bridged = True
        bridge = StructlogBridge(logger_provider, cfg.redact_keys, content_max_length)
        was_configured = structlog.is_configured()
        attached.structlog_before = _insert_into_structlog(bridge)
        if attached.structlog_before is not None:
            attached.structlog_bridge, attached.structlog_was_configured = bridge, was_configured
    for handler in handlers:
        handler.setLevel(cfg.log_level.upper())
        handler.handleError = _quiet_handle_error  # type: ignore[method-assign]  # never print on the host's stderr
    attached.handlers = handlers
    # A client's oversized header, rejected by a propagator, must not be quoted whole in a warning.
    attached.capped = CappedArguments()
    for name in PROPAGATION_LOGGERS:
        logging.getLogger(name).addFilter(attached.capped)
    attached.delivery = Delivery.replace(handlers, bridged=bridged)  # in place of an earlier attachment's
    # A standalone instrumentor (no configure()) writes its operation lines here too.
    follow_setup(sinks, logging.getLevelNamesMapping()[cfg.log_level.upper()])
    if cfg.log_record_ids:
        resource = getattr(logger_provider, "resource", None)
        attached.stamping = Stamping.replace(True, str(getattr(resource, "attributes", {}).get("service.name", "")))
    return attached


def _quiet_handle_error(record: logging.LogRecord) -> None:
    swallowed("logging.handler", _log, "cde-otel: a log record could not be written (%s)", record.name)


def _insert_into_structlog(bridge: StructlogBridge) -> dict[str, Any] | None:
    """Puts ``bridge`` into the current chain before its renderer; the config before, or None if one is in."""
    config = structlog.get_config()
    chain: list[Processor] = list(config["processors"])
    if any(getattr(p, "_cde_otel", False) for p in chain):
        return None  # a second attach (or setup_logging's chain) bridges already
    wrap = structlog.stdlib.ProcessorFormatter.wrap_for_formatter
    index = chain.index(wrap) if wrap in chain else max(len(chain) - 1, 0)
    chain.insert(index, cast(Processor, bridge))
    before = dict(config)
    structlog.configure(processors=chain)
    return before


def processors(settings: Settings | None = None) -> list[Processor]:
    """Processors a host adds to its own structlog chain (before its renderer) to get what our lines carry:
    ``correlation_id``, ``trace_id``/``span_id`` (and the span's project/feature ids), secrets masked::

        structlog.configure(processors=[..., *cde_otel.logging.processors(), structlog.processors.JSONRenderer()])
    """
    cfg = settings if settings is not None else load_settings()
    content_max_length = cfg.capture_max_length if cfg.capture_content else None
    redact = redactor(cfg.redact_keys, content_max_length)
    return [correlation_id_adder(current_correlation_id), add_trace_context, redact]


def bridge(logger_provider: LoggerProvider | None = None, settings: Settings | None = None) -> Processor:
    """The structlog → OpenTelemetry logs bridge, for a chain the host configures after ``configure()``::

        structlog.configure(processors=[..., cde_otel.logging.bridge(), structlog.processors.JSONRenderer()])

    Bound to ``logger_provider``, else the global one (the one ``configure()`` set). It never changes the event.
    """
    from opentelemetry._logs import get_logger_provider

    from cde_otel.logging._bridge import StructlogBridge

    cfg = settings if settings is not None else load_settings()
    content_max_length = cfg.capture_max_length if cfg.capture_content else None
    bridge = StructlogBridge(logger_provider or get_logger_provider(), cfg.redact_keys, content_max_length)
    return cast(Processor, bridge)


def handler(logger_provider: LoggerProvider | None = None, settings: Settings | None = None) -> logging.Handler:
    """A stdlib handler sending each record to OpenTelemetry logs (redacted, with trace and correlation
    ids), for an application that wires its logging itself::

        logging.getLogger().addHandler(cde_otel.logging.handler())

    Bound to ``logger_provider``, else the global one. It stands aside while an OpenTelemetry
    ``LoggingHandler`` is on the root logger, and skips structlog's records (:func:`bridge` sends those).
    """
    from opentelemetry._logs import get_logger_provider

    from cde_otel.logging._bridge import ForeignRecordBridge

    cfg = settings if settings is not None else load_settings()
    content_max_length = cfg.capture_max_length if cfg.capture_content else None
    return ForeignRecordBridge(logger_provider or get_logger_provider(), cfg.redact_keys, content_max_length)
