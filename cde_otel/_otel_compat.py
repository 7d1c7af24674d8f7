"""Every private OpenTelemetry SDK / contrib surface cde-otel touches, in one place.

Each accessor detects the feature and degrades gracefully when a release moved it: nothing here
raises because an SDK internal changed; the caller gets ``None``, ``0`` or a public fallback, and
what it loses is written beside each function. Tested on the lowest (scripts/check-lowest.sh) and
the newest (scripts/test-newest.sh) releases.
"""

from __future__ import annotations

import functools
import operator
from collections import deque
from collections.abc import Callable
from typing import Any

#: Loggers the OTLP exporters, the batch processors and the metric reader report retries and
#: failures on (module names inside the SDK and exporters; a renamed one is merely not quieted).
EXPORT_LOGGERS = (
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http._log_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.sdk._shared_internal",
    "opentelemetry.sdk.metrics._internal.export",
)


def host_resource_detector() -> Any | None:
    """The SDK's ``host.name``/``host.arch`` detector (private: ``_HostResourceDetector``); None if
    it moved -- the resource then lacks ``host.*``, nothing else."""
    try:
        from opentelemetry.sdk.resources import _HostResourceDetector
    except ImportError:
        return None
    return _HostResourceDetector()


def reader_collect(reader: Any) -> Callable[..., Any] | None:
    """The collect callback the MeterProvider gives a registered reader (``reader._collect``), to
    read its cumulative state without exporting; None before registration or if it moved (health
    then gets a reader of its own)."""
    collect = getattr(reader, "_collect", None)
    return collect if callable(collect) else None


def reader_temporalities(reader: Any) -> dict[type, Any]:
    """The temporality per instrument class a reader aggregates with (``_instrument_class_temporality``);
    empty if it moved (callers then treat the reader as not cumulative)."""
    found = getattr(reader, "_instrument_class_temporality", None)
    return dict(found) if isinstance(found, dict) else {}


def exporter_preferences(exporter: Any) -> tuple[dict[type, Any] | None, dict[type, Any] | None]:
    """A metric exporter's preferred temporality and aggregation (set by ``MetricExporter.__init__``,
    kept in private fields); (None, None) -- the SDK's defaults -- if they moved."""
    temporality = getattr(exporter, "_preferred_temporality", None)
    aggregation = getattr(exporter, "_preferred_aggregation", None)
    return (
        temporality if isinstance(temporality, dict) else None,
        aggregation if isinstance(aggregation, dict) else None,
    )


#: The fields the SDK's ``ReadableSpan`` keeps in its instance dict, in the order read.
_SPAN_FIELDS = operator.itemgetter(
    "_context", "_parent", "_name", "_kind", "_start_time", "_end_time", "_attributes", "_events", "_links",
    "_status", "_resource", "_instrumentation_scope",
)  # fmt: skip


@functools.cache
def _sdk_span_classes() -> tuple[tuple[type, ...], Any, Any]:
    from opentelemetry.attributes import BoundedAttributes
    from opentelemetry.sdk.trace import ReadableSpan, Span
    from opentelemetry.sdk.util import BoundedList

    return (ReadableSpan, Span), BoundedAttributes, BoundedList


def readable_span_fields(span: Any) -> tuple[Any, ...] | None:
    """A finished span's fields, read at once from the SDK's own ``ReadableSpan`` (what ``Span.end``
    hands the processors) or ``Span``, where its properties cost a call each and a locked copy for
    the events and links: ``(context, parent, name, kind, start_time, end_time, attributes,
    dropped_attributes, events, dropped_events, links, dropped_links, status, resource,
    instrumentation_scope)``. The attributes are the plain dict the SDK keeps them in
    (``BoundedAttributes._dict``, which the garbage collector does not track while it holds only
    strings and numbers); no events or links are one shared empty tuple. None for any other class,
    or when the fields moved: the caller then reads the public properties (a copy of the attributes,
    one more dict per span)."""
    span_classes, bounded_attributes, bounded_list = _sdk_span_classes()
    if type(span) not in span_classes:
        return None
    try:
        context, parent, name, kind, start, end, attributes, events, links, status, resource, scope = _SPAN_FIELDS(
            span.__dict__
        )
    except KeyError:
        return None
    if isinstance(attributes, bounded_attributes):
        attribute_dict, dropped_attributes = getattr(attributes, "_dict", None), attributes.dropped
        if type(attribute_dict) is not dict:
            return None
    elif attributes is None:
        attribute_dict, dropped_attributes = {}, 0
    else:
        return None
    # A finished span's events and links no longer change: their deques are copied without the lock.
    if isinstance(events, bounded_list) and type(events_dq := getattr(events, "_dq", None)) is deque:
        event_tuple, dropped_events = (tuple(events_dq) if events_dq else ()), events.dropped
    else:
        event_tuple, dropped_events = (tuple(events) if events else ()), 0
    if isinstance(links, bounded_list) and type(links_dq := getattr(links, "_dq", None)) is deque:
        link_tuple, dropped_links = (tuple(links_dq) if links_dq else ()), links.dropped
    else:
        link_tuple, dropped_links = (tuple(links) if links else ()), 0
    return (
        context, parent, name, kind, start, end, attribute_dict, dropped_attributes,
        event_tuple, dropped_events, link_tuple, dropped_links, status, resource, scope,
    )  # fmt: skip


def queued_items(processor: Any) -> int:
    """Items still waiting in a ``Batch*Processor`` (``_batch_processor._queue``); 0 if it moved (the
    shutdown report then undercounts what was not sent)."""
    try:
        return len(processor._batch_processor._queue)
    except Exception:
        return 0


def batch_emitter(processor: Any) -> Callable[[Any], None] | None:
    """What a ``Batch*Processor`` queues an item with (``_batch_processor.emit``); None if it moved."""
    emit = getattr(getattr(processor, "_batch_processor", None), "emit", None)
    return emit if callable(emit) else None


def is_proxy_logger_provider(provider: Any) -> bool:
    """Whether ``provider`` is the API's placeholder before a LoggerProvider is set
    (``opentelemetry._logs._internal.ProxyLoggerProvider``); by class name if the class moved."""
    try:
        from opentelemetry._logs._internal import ProxyLoggerProvider
    except ImportError:
        return type(provider).__name__.lstrip("_").startswith("Proxy")
    return isinstance(provider, ProxyLoggerProvider)


def cardinality_limit_kwargs(reader_class: type, limit: int) -> dict[str, Any]:
    """``cardinality_limits`` for a metric reader's constructor: ``limit`` attribute sets per metric
    stream of every instrument class, the rest going to the ``otel.metric.overflow`` point. Empty when
    the SDK has no such limit (before 1.45.2): no backstop there, the bounded attributes remain."""
    import inspect

    if "cardinality_limits" not in inspect.signature(reader_class).parameters:
        return {}
    from opentelemetry.sdk import metrics

    names = ("Counter", "UpDownCounter", "Histogram", "Gauge", "ObservableCounter", "ObservableUpDownCounter")
    kinds = [getattr(metrics, name) for name in (*names, "ObservableGauge") if hasattr(metrics, name)]
    return {"cardinality_limits": dict.fromkeys(kinds, limit)}


def logging_handler_has_attribute_hook() -> bool:
    """Whether contrib's ``LoggingHandler`` still builds a record in ``_translate`` and its attributes
    in ``_get_attributes`` (the bridge overrides the latter to redact them and add the correlation id)."""
    try:
        from opentelemetry.instrumentation.logging.handler import LoggingHandler
    except ImportError:
        return False
    return all(callable(getattr(LoggingHandler, name, None)) for name in ("_translate", "_get_attributes"))
