"""Duration records aggregated when the metrics are collected, not on the request's thread.

The SDK aggregates a histogram record where it is made: an exponential histogram's bucket
index, its exemplar offer, its locks - 10-15 µs a record, five records a tool call, all while
the client waits. On a MeterProvider that ``configure()`` built, nothing reads an aggregation
but a collection of that provider, so the work can wait for one::

    measurements = defer_measurements(provider)          # configure()'s own MeterProvider
    histogram = deferred(provider, meter.create_histogram(...))  # else the histogram itself
    histogram.record(0.012, {"cde.operation": "save"})    # queued: value, attributes, the span's ids

    # every collection of ``provider`` (periodic, forced, at shutdown, health's) calls, on the
    # collecting thread and before it reads the aggregations:
    measurements.drain()

The drain is an observable instrument's callback (``cde.instrumentation.failures``, registered
on every MeterProvider an instrumentor records to): the SDK calls those in every collection,
before it reads the aggregations, so each collection sees every record made before it, in the
interval it was made in. Only the public metrics API is used.

A record keeps what the SDK takes from it: its value, its attributes, and the span that was
current, as its ids, so the exemplar links the same trace and span. What differs: an
exemplar's timestamp is when it was aggregated (at most one export interval later).

Bounded: past :data:`MAX_QUEUED` waiting, a record is aggregated at once, as without this; so
is every record after :meth:`DeferredMeasurements.close` (the pipeline's shutdown). A forked
child drops its parent's queue (those records are the parent's to export). A histogram of any
other MeterProvider (the application's own) is never deferred.

Imports only the OpenTelemetry API and the standard library: both the instrumentation (which
records) and the telemetry pipeline (which builds the provider) use it.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import deque
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.metrics import Histogram, MeterProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext
from opentelemetry.util.types import Attributes

from cde_otel._swallowed import swallowed

MAX_QUEUED = 8_192  # 5 s (the export interval) of 1,600 records a second; beyond, aggregated where made

SITE = "metrics.deferred"
_log = logging.getLogger("cde_otel.telemetry")
Record = tuple[Histogram, float, Attributes, SpanContext]


class DeferredMeasurements:
    """The records waiting for the next collection of one MeterProvider's readers."""

    def __init__(self) -> None:
        self._queue: deque[Record] = deque()
        self._drain_lock = threading.Lock()  # one replay at a time: a record is aggregated once
        self.closed = False
        _ALL.add(self)

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, histogram: Histogram, amount: float, attributes: Attributes, span_context: SpanContext) -> bool:
        """Queues a record; False when the caller must aggregate it itself (closed or full)."""
        if self.closed or len(self._queue) >= MAX_QUEUED:
            return False
        self._queue.append((histogram, amount, attributes, span_context))
        return True

    def drain(self) -> None:
        """Aggregates every waiting record, in order, each in the context of the span it was made in."""
        with self._drain_lock:
            queue = self._queue
            # A span's records share its SpanContext object; kept alive here, so no id is reused.
            contexts: dict[int, tuple[SpanContext, Context]] = {}
            while queue:
                histogram, amount, attributes, span_context = queue.popleft()
                known = contexts.get(id(span_context))
                if known is None:
                    known = (span_context, trace.set_span_in_context(NonRecordingSpan(span_context), Context()))
                    contexts[id(span_context)] = known
                try:
                    histogram.record(amount, attributes, context=known[1])
                except Exception:  # never the collecting thread's failure; the other records still count
                    swallowed(SITE, _log, "cde-otel: a deferred duration record failed")

    def close(self) -> None:
        """From now on records are aggregated where they are made. What waits is left for the
        provider's last collection, at its shutdown, on the thread that shuts it down."""
        self.closed = True

    def _forget(self) -> None:
        self._queue = deque()
        self._drain_lock = threading.Lock()


class DeferredHistogram(Histogram):
    """A histogram whose records wait in ``measurements`` for the next collection."""

    def __init__(self, histogram: Histogram, measurements: DeferredMeasurements) -> None:
        # The API's Instrument.__init__ is abstract with nothing in it; the SDK's instrument keeps
        # the name, unit and description.
        self._histogram = histogram
        self._measurements = measurements

    def record(self, amount: float, attributes: Attributes = None, context: Context | None = None) -> None:
        span_context = trace.get_current_span(context).get_span_context()
        if not self._measurements.add(self._histogram, amount, attributes, span_context):
            self._histogram.record(amount, attributes, context=context)


_ALL: weakref.WeakSet[DeferredMeasurements] = weakref.WeakSet()
_by_provider: weakref.WeakKeyDictionary[Any, DeferredMeasurements] = weakref.WeakKeyDictionary()


def defer_measurements(meter_provider: MeterProvider) -> DeferredMeasurements:
    """The queue of ``meter_provider``'s deferred records, from now on: for a MeterProvider whose
    every reader is the caller's (``configure()``'s own)."""
    measurements = _by_provider.get(meter_provider)
    if measurements is None:
        measurements = _by_provider[meter_provider] = DeferredMeasurements()
    return measurements


def deferred_measurements(meter_provider: MeterProvider | None) -> DeferredMeasurements | None:
    """The queue :func:`defer_measurements` gave ``meter_provider`` (None: the global one), if any."""
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    try:
        return _by_provider.get(provider)
    except TypeError:  # a provider that cannot be weakly referenced was never declared
        return None


def deferred(meter_provider: MeterProvider | None, histogram: Histogram) -> Histogram:
    """``histogram`` deferred when ``meter_provider`` (None: the global one) defers its records, else itself."""
    measurements = deferred_measurements(meter_provider)
    return histogram if measurements is None else DeferredHistogram(histogram, measurements)


def _after_fork_in_child() -> None:
    for measurements in list(_ALL):
        measurements._forget()


os.register_at_fork(after_in_child=_after_fork_in_child)
