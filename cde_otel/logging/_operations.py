"""Operation events (PROD-02.2/02.4): what the instrumentation wrapper reports beside the span.

Every operation's outcome, ids and duration are always in its span (``cde.outcome``,
``error.type``, the ids, the span's own times). :class:`OperationEvents` adds, per finished
operation:

* **one JSON line** wherever a log file (``CDE_OTEL_LOG_FILE``) or the opt-in console
  (``CDE_OTEL_LOG_CONSOLE``) is configured: ``"<operation> succeeded"`` at INFO, ``"<operation>
  failed"`` (with ``error_code``) or a slow one (``slow``, ``rss_mb``, ``cpu_ms``) at WARNING;
  with ``CDE_OTEL_LOG_LEVEL=debug`` also ``"<operation> started"``. No sink, no line work at all.
* **one OpenTelemetry log record** for a failed or slow operation only (the span already holds
  the rest), inside the operation's trace.

The lines are rendered straight to bytes with orjson (the standard ``json`` module if orjson is
missing): no structlog chain, no stdlib logging hop, no logger look-up per event. They are
buffered and written in batches — every second, at 64 KiB, at once after a WARNING line, and at
:meth:`OperationEvents.close` (``shutdown()``) — by one daemon thread (:mod:`._daemon`) that starts with the
first line. A batch is one ``write()`` (console) or one locked ``emit`` of the rotating log handler
(file), so lines from several processes never interleave. Nothing on a line is free text (ids,
codes, numbers, operation names), so the lines need no scrubbing::

    {"timestamp": "2026-01-05T10:00:00.123456Z", "level": "info", "logger": "cde_otel.operations",
     "event": "Feature.advance_phase succeeded", "operation": "Feature.advance_phase",
     "duration_ms": 0.412, "outcome": "ok", "project_id": "...", "feature_id": "...",
     "phase": "define", "correlation_id": "...", "trace_id": "...", "span_id": "..."}
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry._logs import LogRecord, SeverityNumber

from cde_otel._reentry import GUARD
from cde_otel._swallowed import swallowed
from cde_otel._version import __version__
from cde_otel.logging._daemon import DaemonLoop
from cde_otel.logging._sinks import (
    FOLLOWED,
    OPERATIONS_LOGGER,
    LineSink,
)
from cde_otel.semconv import OUTCOME_ERROR, OUTCOME_OK, SCHEMA_URL

if TYPE_CHECKING:
    from opentelemetry._logs import LoggerProvider
    from opentelemetry.trace import Span

    from cde_otel.settings import Settings

_log = logging.getLogger("cde_otel.logging")

try:
    import orjson

    def _dumps(line: dict[str, Any]) -> bytes:
        return orjson.dumps(line, option=orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE)

except ImportError:  # pragma: no cover - orjson has wheels for every mainstream platform
    import json

    def _dumps(line: dict[str, Any]) -> bytes:
        stamp = line["timestamp"].isoformat().replace("+00:00", "Z")
        return (json.dumps({**line, "timestamp": stamp}, separators=(",", ":")) + "\n").encode()


_LEVEL_NAMES = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning"}


class OperationEvents:
    """The operation lines and the failure/slow log records of one ``configure()`` (see the module docs).

    ``level`` is ``CDE_OTEL_LOG_LEVEL``: INFO writes the end lines, DEBUG the start lines too,
    WARNING only failed and slow operations (lines and log records), ERROR nothing.
    """

    def __init__(
        self,
        sinks: Sequence[LineSink] = (),
        *,
        level: int = logging.INFO,
        logger_provider: LoggerProvider | None = None,
        slow_operation_ms: float = 1000.0,
        flush_interval_s: float = 1.0,
        max_pending_bytes: int = 65_536,
        follows_setup: bool = False,
    ) -> None:
        self._own_sinks = tuple(sinks)
        self._level = level
        #: Whether ``setup_logging``'s outputs are this writer's too (a standalone instrumentor's).
        self.follows_setup = follows_setup
        self.sinks: tuple[LineSink, ...] = ()
        self.start_on = self.ok_lines = self._warn_lines = False
        if follows_setup:
            self._use(FOLLOWED.sinks, FOLLOWED.level)
        else:
            self._use((), level)
        self._otel = None
        if logger_provider is not None and level <= logging.WARNING:
            self._otel = logger_provider.get_logger(OPERATIONS_LOGGER, __version__, SCHEMA_URL)
        #: Operations slower than this (ns) are reported as slow.
        self.slow_after_ns = int(slow_operation_ms * 1e6)
        self._max_pending = max_pending_bytes
        self._lock = threading.Lock()  # the pending lines
        self._write_lock = threading.Lock()  # one batch at a time, in order
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._closed = False
        self._loop = DaemonLoop(
            "cde-otel-operation-lines",
            self.flush,
            interval_s=flush_interval_s,
            site="logging.operation_lines",
            after_fork=self._after_fork,
        )
        self._process: Any = None  # psutil.Process, created on the first slow operation
        FOLLOWED.writers.add(self)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        sinks: Sequence[LineSink] = (),
        logger_provider: LoggerProvider | None = None,
        *,
        follows_setup: bool = False,
    ) -> OperationEvents:
        """Level and slow threshold from ``CDE_OTEL_LOG_LEVEL`` / ``CDE_OTEL_SLOW_OPERATION_MS``."""
        level = logging.getLevelNamesMapping()[settings.log_level.upper()]
        return cls(
            sinks,
            level=level,
            logger_provider=logger_provider,
            slow_operation_ms=settings.slow_operation_ms,
            follows_setup=follows_setup,
        )

    def _use(self, extra: tuple[LineSink, ...], level: int) -> None:
        """The sinks are this writer's own plus ``extra`` (``setup_logging``'s), lines at ``level``."""
        self.sinks = self._own_sinks + extra
        lines = bool(self.sinks)
        self.start_on = lines and level <= logging.DEBUG
        #: Whether an ok operation produces anything (a line): when not, the wrapper skips it early.
        self.ok_lines = lines and level <= logging.INFO
        self._warn_lines = lines and level <= logging.WARNING

    # -- events ----------------------------------------------------------------------------------
    def started(self, operation: str, span: Span, start_ns: int, ids: Mapping[str, Any]) -> None:
        """``"<operation> started"`` (DEBUG): call only when :attr:`start_on`."""
        line = _line(logging.DEBUG, f"{operation} started", start_ns, span, {"operation": operation, **ids})
        self._add(_dumps(line), urgent=False)

    def ended(
        self,
        operation: str,
        span: Span,
        start_ns: int,
        end_ns: int,
        ids: Mapping[str, Any],
        *,
        error_code: str | None = None,
        slow: bool = False,
        cpu_ms: float | None = None,
    ) -> None:
        """The end line (where a sink is configured) and, for a failure or a slow one, the log record."""
        warn = slow or error_code is not None
        lines = self._warn_lines if warn else self.ok_lines
        if not lines and (not warn or self._otel is None):
            return
        fields: dict[str, Any] = {
            "operation": operation,
            "duration_ms": round((end_ns - start_ns) / 1e6, 3),
            "outcome": OUTCOME_OK if error_code is None else OUTCOME_ERROR,
        }
        if error_code is not None:
            fields["error_code"] = error_code
        if slow:
            fields["slow"] = True
            if cpu_ms is not None:
                fields["cpu_ms"] = round(cpu_ms, 3)
            rss_mb = self._rss_mb()
            if rss_mb is not None:
                fields["rss_mb"] = round(rss_mb, 1)
        fields.update(ids)
        event = f"{operation} {'succeeded' if error_code is None else 'failed'}"
        level = logging.WARNING if warn else logging.INFO
        if lines:
            self._add(_dumps(_line(level, event, end_ns, span, fields)), urgent=warn)
        if warn and self._otel is not None:
            self._otel.emit(
                LogRecord(
                    timestamp=end_ns,
                    observed_timestamp=time.time_ns(),
                    context=otel_context.get_current(),
                    severity_text="WARN",
                    severity_number=SeverityNumber.WARN,
                    body=event,
                    attributes=fields,
                )
            )

    # -- buffering -------------------------------------------------------------------------------
    def _add(self, data: bytes, *, urgent: bool) -> None:
        with self._lock:
            if self._closed:
                return
            self._pending.append(data)
            self._pending_bytes += len(data)
            full = self._pending_bytes >= self._max_pending
        self._loop.ensure_running()  # outside the lock: see DaemonLoop.ensure_running
        if urgent or full:
            self.flush()

    def flush(self) -> None:
        """Writes the pending lines now (one batch per sink), after any batch taken before. Never raises."""
        with self._write_lock:
            with self._lock:
                if not self._pending:
                    return
                data = b"".join(self._pending).decode()
                self._pending.clear()
                self._pending_bytes = 0
            was_active, GUARD.active = GUARD.active, True
            try:
                for sink in self.sinks:
                    try:
                        sink.write_lines(data)
                    except Exception:  # a full disk or a closed stream must not reach the operation
                        swallowed("logging.operation_lines", _log, "cde-otel: operation lines not written to %r", sink)
            finally:
                GUARD.active = was_active

    def close(self) -> None:
        """Stops taking lines, writes what is pending and stops the flusher thread. Idempotent."""
        with self._lock:
            self._closed = True
        self.flush()
        self._loop.stop()

    def _after_fork(self) -> None:
        """In a forked child: the parent's pending lines are the parent's; the flusher restarts on demand."""
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._pending = []
        self._pending_bytes = 0

    def _rss_mb(self) -> float | None:
        try:
            if self._process is None:
                import psutil

                self._process = psutil.Process()
            return float(self._process.memory_info().rss) / (1024 * 1024)
        except Exception:  # resource usage is a nice-to-have; never fail the caller's operation for it
            return None


def _line(level: int, event: str, time_ns: int, span: Span, fields: Mapping[str, Any]) -> dict[str, Any]:
    line = {
        "timestamp": datetime.fromtimestamp(time_ns / 1e9, UTC),
        "level": _LEVEL_NAMES[level],
        "logger": OPERATIONS_LOGGER,
        "event": event,
        **fields,
    }
    span_context = span.get_span_context()
    if span_context.is_valid:
        line["trace_id"] = format(span_context.trace_id, "032x")
        line["span_id"] = format(span_context.span_id, "016x")
    return line
