"""Spans and log records encoded as they end, so the batch queue holds bytes, not object graphs.

A finished span waits in the batch processor's queue for up to its schedule delay (5 s), and
with it a dozen objects the garbage collector tracks: the span, its attributes, its context,
its status. A busy server ends hundreds of spans in that time; each young collection that
finds them alive promotes them, and promoted objects bring the next full collection closer -
one that walks every object of the host, 60-85 ms on the orchestrator. The exporters that
write the wire format themselves (OTLP/HTTP protobuf, the embedded default's OTLP/JSON)
encode each item once it ends instead: the queue then holds one small object per item with
its bytes, which the collector does not walk, and the export joins the bytes into a request.

The same bytes reach the wire either way (the tests compare them). The encoding moves from
the export thread to the thread that ends the span, a few microseconds per span; the
exporters other than these two (console, gRPC, an application's) are not touched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import INVALID_SPAN_ID, INVALID_TRACE_ID, SpanContext, TraceFlags

from cde_otel._otel_compat import batch_emitter
from cde_otel._swallowed import swallowed

_log = logging.getLogger("cde_otel.telemetry")

#: What a batch span processor checks before it queues an item: only sampled spans are encoded.
_SAMPLED = SpanContext(INVALID_TRACE_ID, INVALID_SPAN_ID, False, TraceFlags(TraceFlags.SAMPLED))


class EncodedItem:
    """A span or log record as the exporter that sends it encodes it, with what the request groups
    it by (its resource and instrumentation scope)."""

    __slots__ = ("instrumentation_scope", "payload", "resource")

    context = _SAMPLED  # read by ``BatchSpanProcessor.on_end``

    def __init__(self, resource: Any, instrumentation_scope: Any, payload: Any) -> None:
        self.resource = resource
        self.instrumentation_scope = instrumentation_scope
        self.payload = payload


Encoder = Callable[[Any], EncodedItem]


def encoded_or_item(encode: Encoder, item: Any) -> Any:
    """``item`` encoded, or ``item`` itself when that fails: the export encodes it (or falls back) later."""
    try:
        return encode(item)
    except Exception:
        swallowed("export.encode_item", _log, "cde-otel: an item is queued unencoded")
        return item


class EncodingBatchSpanProcessor(BatchSpanProcessor):
    """A ``BatchSpanProcessor`` that queues each sampled span encoded by ``encode``."""

    def __init__(self, span_exporter: SpanExporter, encode: Encoder, **kwargs: Any) -> None:
        super().__init__(span_exporter, **kwargs)
        self._encode = encode

    def on_end(self, span: ReadableSpan) -> None:
        if span.context and span.context.trace_flags.sampled:
            super().on_end(encoded_or_item(self._encode, span))


class EncodingBatchLogRecordProcessor(BatchLogRecordProcessor):
    """A ``BatchLogRecordProcessor`` that queues each record encoded by ``encode``; the stock
    ``on_emit`` when the SDK's processor no longer queues as this expects."""

    def __init__(self, exporter: LogRecordExporter, encode: Encoder, **kwargs: Any) -> None:
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
        item = encoded_or_item(self._encode, readable)
        if item is readable:
            super().on_emit(log_record)
        else:
            self._emit(item)
