"""Spans and log records queued light, so the batch queue holds no SDK object graphs.

A finished span waits in the batch processor's queue for up to its schedule delay (5 s), and
with it a dozen objects the garbage collector tracks: the span, its attributes, its context,
its status. A busy server ends hundreds of spans in that time; each young collection that
finds them alive promotes them, and promoted objects bring the next full collection closer -
one that walks every object of the host, 60-85 ms on the orchestrator. The exporters that
write the wire format themselves (OTLP/HTTP protobuf, the embedded default's OTLP/JSON)
therefore take each item in a lighter form as it ends (their ``queue_form``):

* a span becomes a :class:`SlimSpan`: the same fields, read once, in one object with slots
  (its attributes the SDK's own plain dict, a status without a message shared). It is a few
  field reads on the thread that ends the span - that thread is often a request's, so the
  encoding stays on the export thread - and the encoders read it as they read a span;
* a log record is encoded at once (:class:`EncodedItem`): records are bridged off the host's
  thread already (:mod:`cde_otel.logging._deferred`), and the queue then holds its bytes.

The same bytes reach the wire either way (the tests compare them); the exporters other than
these two (console, gRPC, an application's) keep the SDK's processors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from cde_otel._otel_compat import batch_emitter, readable_span_fields
from cde_otel._swallowed import swallowed

_log = logging.getLogger("cde_otel.telemetry")


class EncodedItem:
    """A log record as the exporter that sends it encodes it, with what the request groups it by
    (its resource and instrumentation scope)."""

    __slots__ = ("instrumentation_scope", "payload", "resource")

    def __init__(self, resource: Any, instrumentation_scope: Any, payload: Any) -> None:
        self.resource = resource
        self.instrumentation_scope = instrumentation_scope
        self.payload = payload


# A status without a message, one object per code for every span; by the code's id, as an enum
# member hashes in Python.
_STATUSES = {id(code): Status(code) for code in StatusCode}


class SlimSpan:
    """A finished span's fields, its ids as plain integers; the exporters read it as they read a
    ``ReadableSpan`` (the stock OTLP encoder too, through :meth:`get_span_context` and :attr:`parent`,
    which build the contexts again). See the module docs."""

    __slots__ = (
        "attributes",
        "dropped_attributes",
        "dropped_events",
        "dropped_links",
        "end_time",
        "events",
        "instrumentation_scope",
        "kind",
        "links",
        "name",
        "parent_id",
        "parent_is_remote",
        "resource",
        "span_id",
        "start_time",
        "status",
        "trace_flags",
        "trace_id",
        "trace_state",
    )
    attributes: Mapping[str, Any]
    dropped_attributes: int
    dropped_events: int
    dropped_links: int
    end_time: int | None
    events: Sequence[Event]
    instrumentation_scope: InstrumentationScope | None
    kind: SpanKind
    links: Sequence[Link]
    name: str
    parent_id: int | None
    parent_is_remote: bool
    resource: Resource
    span_id: int
    start_time: int | None
    status: Status | None
    trace_flags: int
    trace_id: int | None  # None: the span had no context
    trace_state: TraceState | None  # None: empty

    def get_span_context(self) -> SpanContext | None:
        return None if self.trace_id is None else self._context(self.span_id, False)

    context = property(get_span_context)

    @property
    def parent(self) -> SpanContext | None:
        return None if self.parent_id is None else self._context(self.parent_id, self.parent_is_remote)

    def _context(self, span_id: int, is_remote: bool) -> SpanContext:
        assert self.trace_id is not None
        state = self.trace_state if self.trace_state is not None else TraceState()
        return SpanContext(self.trace_id, span_id, is_remote, TraceFlags(self.trace_flags), state)


def slim_span(span: ReadableSpan) -> SlimSpan:
    """``span``'s fields in a :class:`SlimSpan`."""
    fields = readable_span_fields(span)
    if fields is None:  # not the SDK's own class: its public properties
        fields = (
            span.context, span.parent, span.name, span.kind, span.start_time, span.end_time,
            dict(span.attributes or {}), span.dropped_attributes, tuple(span.events), span.dropped_events,
            tuple(span.links), span.dropped_links, span.status, span.resource, span.instrumentation_scope,
        )  # fmt: skip
    slim = SlimSpan()
    (
        context, parent, slim.name, slim.kind, slim.start_time, slim.end_time,
        slim.attributes, slim.dropped_attributes, slim.events, slim.dropped_events,
        slim.links, slim.dropped_links, status, slim.resource, slim.instrumentation_scope,
    ) = fields  # fmt: skip
    if context is None:
        slim.trace_id, slim.span_id, slim.trace_flags, slim.trace_state = None, 0, 0, None
    else:
        slim.trace_id, slim.span_id, slim.trace_flags = context.trace_id, context.span_id, int(context.trace_flags)
        slim.trace_state = context.trace_state or None
    slim.parent_id, slim.parent_is_remote = (None, False) if parent is None else (parent.span_id, parent.is_remote)
    slim.status = status if status is None or status.description else _STATUSES[id(status.status_code)]
    return slim


def as_slim_span(span: ReadableSpan | SlimSpan) -> SlimSpan:
    """``span`` itself if it is slim already, else :func:`slim_span` of it: what the encoders read."""
    return span if isinstance(span, SlimSpan) else slim_span(span)


QueueForm = Callable[[Any], Any]


def queued_form(form: QueueForm, item: Any) -> Any:
    """``item`` in the form ``form`` gives, or ``item`` itself when that fails: the export takes it as it is."""
    try:
        return form(item)
    except Exception:
        swallowed("export.queue_form", _log, "cde-otel: an item is queued as it is")
        return item


class SlimBatchSpanProcessor(BatchSpanProcessor):
    """A ``BatchSpanProcessor`` that queues each sampled span in the form ``form`` gives
    (:func:`slim_span`); the stock ``on_end`` when the SDK's processor no longer queues as this expects."""

    def __init__(self, span_exporter: SpanExporter, form: QueueForm, **kwargs: Any) -> None:
        super().__init__(span_exporter, **kwargs)
        self._form = form
        self._emit = batch_emitter(self)

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if self._emit is None or not (context and context.trace_flags.sampled):
            super().on_end(span)
            return
        self._emit(queued_form(self._form, span))


class EncodingBatchLogRecordProcessor(BatchLogRecordProcessor):
    """A ``BatchLogRecordProcessor`` that queues each record encoded by ``encode``; the stock
    ``on_emit`` when the SDK's processor no longer queues as this expects."""

    def __init__(self, exporter: LogRecordExporter, encode: QueueForm, **kwargs: Any) -> None:
        super().__init__(exporter, **kwargs)
        self._encode = encode
        self._emit = batch_emitter(self)

    def on_emit(self, log_record: Any) -> None:
        if self._emit is None or log_record.resource is None:
            super().on_emit(log_record)
            return
        # What the stock on_emit would queue, encoded at once (so without the copy it makes to
        # drop the record's context).
        readable = ReadableLogRecord(
            log_record=log_record.log_record,
            resource=log_record.resource,
            instrumentation_scope=log_record.instrumentation_scope,
            limits=log_record.limits,
        )
        item = queued_form(self._encode, readable)
        if item is readable:
            super().on_emit(log_record)
        else:
            self._emit(item)
