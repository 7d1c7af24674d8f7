"""Whether telemetry is actually leaving the process: each exporter's last result, per signal.

The SDK keeps export results inside its processors; these pass-through exporters remember
them so health can report "ok" or "failing" without a second bookkeeping of spans. They also
count what could not be sent (items of failed exports, and of exports still in flight), which
``shutdown()`` reports once, and they can be aborted: ``abort()`` shuts the wrapped exporter
down, which interrupts the OTLP exporters' retry back-off, so a dead collector cannot hold
the host's exit hostage.

They are also the redaction backstop for what cde-otel did not produce itself: another
instrumentation's ``span.record_exception(...)``, a record from an OpenTelemetry
``LoggingHandler`` the host installed. Exception events' and log records' ``exception.message``
and ``exception.stacktrace``, span status descriptions and log bodies go through
:func:`~cde_otel.redaction.scrub_text` before export, and are cut to a few KB. This runs in the export thread, and costs
one check per span without events or record without exception attributes; the exporters that
take each item in a lighter form as it ends (:mod:`._encoded`) have it scrubbed when it takes that
form, on the thread that ends it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status

from cde_otel._otel_compat import EXPORT_LOGGERS, exporter_preferences
from cde_otel.redaction import bounded_stack, bounded_text
from cde_otel.telemetry._encoded import EncodedItem, QueueForm, SlimSpan

_log = logging.getLogger("cde_otel.telemetry")
# Set while one of our exporters runs in this thread: the shutdown filter below only ever
# touches records that our own exports produce, never the host's exporters'.
_in_our_export = threading.local()


class ExportStatus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ok: dict[str, bool] = {}
        self._failed: dict[str, int] = {}
        self._in_flight: dict[str, int] = {}
        self.quiet = False  # True during shutdown: our exports' retry warnings are counted, not printed
        self.quieted_records = 0

    def record(self, signal: str, ok: bool, items: int = 0) -> None:
        with self._lock:
            self._ok[signal] = ok
            if not ok:
                self._failed[signal] = self._failed.get(signal, 0) + items

    def status(self) -> str:
        """ "failing" when a signal's last export failed, else "ok" (nothing exported yet counts as ok)."""
        with self._lock:
            return "failing" if not all(self._ok.values()) else "ok"

    def all_failing(self) -> bool:
        """True when every signal exported so far failed its last export (the collector looks down)."""
        with self._lock:
            return bool(self._ok) and not any(self._ok.values())

    def by_signal(self) -> dict[str, bool]:
        with self._lock:
            return dict(self._ok)

    @contextlib.contextmanager
    def exporting(self, signal: str, items: int) -> Iterator[None]:
        """Marks an export of ``items`` as in flight (counted as unsent until it returns) in this thread."""
        with self._lock:
            self._in_flight[signal] = self._in_flight.get(signal, 0) + items
        _in_our_export.active = True
        try:
            yield
        finally:
            _in_our_export.active = False
            with self._lock:
                self._in_flight[signal] -= items

    def unsent(self) -> dict[str, int]:
        """Items per signal whose export failed, plus those still being exported right now."""
        with self._lock:
            signals = set(self._failed) | set(self._in_flight)
            return {s: self._failed.get(s, 0) + self._in_flight.get(s, 0) for s in sorted(signals)}


class _QuietDuringShutdown(logging.Filter):
    """Drops (and counts) what our own exports log while ``status.quiet`` is on: one summary replaces them."""

    def __init__(self, status: ExportStatus) -> None:
        super().__init__()
        self._status = status

    def filter(self, record: logging.LogRecord) -> bool:
        if self._status.quiet and getattr(_in_our_export, "active", False):
            self._status.quieted_records += 1
            return False
        return True


@contextlib.contextmanager
def quiet_export_logs(status: ExportStatus) -> Iterator[None]:
    """For the shutdown window: our exporters' per-retry warnings are counted instead of printed."""
    quiet = _QuietDuringShutdown(status)
    loggers = [logging.getLogger(name) for name in EXPORT_LOGGERS]
    status.quiet = True
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)


def _metric_points(metrics_data: MetricsData) -> int:
    try:
        return sum(
            len(metric.data.data_points)
            for resource in metrics_data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        )
    except Exception:  # counting is best effort; never fail an export for it
        return 0


_EXCEPTION_TEXT = ("exception.message", "exception.stacktrace")


def _scrubbed(attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A copy of ``attributes`` with exception text scrubbed, or None when nothing had to change."""
    if not attributes:
        return None
    changed: dict[str, Any] = {}
    for key in _EXCEPTION_TEXT:
        value = attributes.get(key)
        if isinstance(value, str):
            clean = bounded_stack(value) if key == "exception.stacktrace" else bounded_text(value)
            if clean != value:
                changed[key] = clean
    return {**attributes, **changed} if changed else None


def _scrubbed_events(events: Sequence[Event]) -> list[Event] | None:
    """``events`` with their exception text scrubbed, or None when nothing had to change."""
    clean: list[Event] = []
    changed = False
    for event in events:
        attributes = _scrubbed(event.attributes) if event.name == "exception" else None
        changed |= attributes is not None
        clean.append(event if attributes is None else Event(event.name, attributes, event.timestamp, limit=None))
    return clean if changed else None


def scrub_span(span: ReadableSpan) -> ReadableSpan:
    """``span`` itself, or a copy with its exception events and status description scrubbed."""
    description = span.status.description
    events = span.events
    if not events and not description:
        return span
    clean_events = _scrubbed_events(events) if events else None
    clean_description = bounded_text(description) if description else description
    if clean_events is None and clean_description == description:
        return span
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=span.attributes,
        events=events if clean_events is None else clean_events,
        links=span.links,
        kind=span.kind,
        status=Status(span.status.status_code, clean_description),
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def scrub_slim_span(span: Any) -> Any:
    """A :class:`SlimSpan` with its exception events and status description scrubbed, in place (it
    is the queue's own, nothing else holds it); anything else as it is (scrubbed at export)."""
    if not isinstance(span, SlimSpan):
        return span
    if span.events:
        clean_events = _scrubbed_events(span.events)
        if clean_events is not None:
            span.events = clean_events
    status = span.status
    if status is not None and status.description:
        clean_description = bounded_text(status.description)
        if clean_description != status.description:
            span.status = Status(status.status_code, clean_description)
    return span


def scrub_log_record(readable: ReadableLogRecord) -> ReadableLogRecord:
    """``readable`` itself, or a copy with its exception attributes and text body scrubbed."""
    record = readable.log_record
    attributes = _scrubbed(record.attributes)
    body = bounded_text(record.body) if isinstance(record.body, str) else record.body
    if attributes is None and body is record.body:
        return readable
    clean = copy.copy(record)
    clean.body = body
    if attributes is not None:
        clean.attributes = attributes
    return dataclasses.replace(readable, log_record=clean)


class _Tracked:
    """Idempotent shutdown (the processor's and ``abort()`` may both call it) and ``abort()``."""

    _inner: Any
    _closed = False

    def abort(self) -> None:
        """Stops the wrapped exporter now: interrupts a retry back-off in progress."""
        self._close()

    def _close(self, **kwargs: Any) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._inner.shutdown(**kwargs)
        except Exception:
            _log.debug("cde-otel: exporter shutdown failed", exc_info=True)


class TrackedSpanExporter(_Tracked, SpanExporter):
    def __init__(self, inner: SpanExporter, status: ExportStatus) -> None:
        self._inner, self._status = inner, status

    def queue_form(self) -> QueueForm | None:
        """The inner exporter's slim span (:mod:`._encoded`), scrubbed as it is made."""
        form = getattr(self._inner, "queue_form", None)
        return None if form is None else lambda span: scrub_slim_span(form(span))

    def export(self, spans: Sequence[ReadableSpan | SlimSpan]) -> SpanExportResult:
        result = SpanExportResult.FAILURE
        with self._status.exporting("traces", len(spans)):
            try:  # a SlimSpan was scrubbed before it was queued
                result = self._inner.export(
                    [span if isinstance(span, SlimSpan) else scrub_span(span) for span in spans]
                )
            except Exception:
                _log.debug("cde-otel: span export raised", exc_info=True)
        self._status.record("traces", result is SpanExportResult.SUCCESS, len(spans))
        return result

    def shutdown(self) -> None:
        self._close()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return bool(self._inner.force_flush(timeout_millis))


class TrackedLogExporter(_Tracked, LogRecordExporter):
    def __init__(self, inner: LogRecordExporter, status: ExportStatus) -> None:
        self._inner, self._status = inner, status

    def queue_form(self) -> QueueForm | None:
        """The inner exporter's encoded record (:mod:`._encoded`), scrubbed before it is encoded."""
        form = getattr(self._inner, "queue_form", None)
        return None if form is None else lambda record: form(scrub_log_record(record))

    def export(self, batch: Sequence[ReadableLogRecord | EncodedItem]) -> LogRecordExportResult:
        result = LogRecordExportResult.FAILURE
        with self._status.exporting("logs", len(batch)):
            try:  # an EncodedItem was scrubbed before it was encoded
                result = self._inner.export(
                    [record if isinstance(record, EncodedItem) else scrub_log_record(record) for record in batch]
                )
            except Exception:
                _log.debug("cde-otel: log export raised", exc_info=True)
        self._status.record("logs", result is LogRecordExportResult.SUCCESS, len(batch))
        return result

    def shutdown(self) -> None:
        self._close()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return bool(self._inner.force_flush(timeout_millis))


class TrackedMetricExporter(_Tracked, MetricExporter):
    def __init__(self, inner: MetricExporter, status: ExportStatus) -> None:
        # Keep the wrapped exporter's temporality and aggregation preferences (cumulative by default).
        temporality, aggregation = exporter_preferences(inner)
        super().__init__(preferred_temporality=temporality, preferred_aggregation=aggregation)
        self._inner, self._status = inner, status

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        points = _metric_points(metrics_data)
        result = MetricExportResult.FAILURE
        with self._status.exporting("metrics", points):
            try:
                result = self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
            except Exception:
                _log.debug("cde-otel: metric export raised", exc_info=True)
        self._status.record("metrics", result is MetricExportResult.SUCCESS, points)
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return bool(self._inner.force_flush(timeout_millis))

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._close(timeout_millis=timeout_millis, **kwargs)
