"""OTLP/JSON encoding of the SDK's spans, metrics and log records, straight to plain dicts.

One ``Export*ServiceRequest`` per call, in the OTLP JSON mapping the Collector's ``otlpjsonfile``
receiver (and the OTLP/HTTP receiver with ``application/json``) reads: lowerCamelCase keys, trace
and span ids as hex, 64-bit integers as strings, enums as numbers, fields at their default value
left out (as protobuf's JSON mapping does). The dicts are serialised by orjson, each span or record
on its own, so that a batch never lives as dicts all at once. Metrics: :mod:`._otlp_json_metrics`.

Why not the SDK's protobuf encoders or contrib's JSON encoders: both build an intermediate message
object per span, attribute and value before anything is serialised; on the embedded default that
was about half of the CPU telemetry added per call. The resource and scope of a batch are encoded
once per object and reused (they never change during a process's life).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import orjson
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from cde_otel.telemetry._encoded import EncodedItem, SlimSpan, as_slim_span
from cde_otel.telemetry._otlp_grouping import Canonical, grouped

JSON = dict[str, Any]

# SpanFlags: the parent's "is remote" bit is known (0x100), and set (0x200) when the parent is remote.
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200


def _double(value: float) -> float | str:
    """JSON has no NaN or infinities: the protobuf mapping writes them as strings."""
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _any_value(value: Any) -> JSON:
    kind = type(value)
    if kind is str:
        return {"stringValue": value}
    if kind is bool:
        return {"boolValue": value}
    if kind is int:
        return {"intValue": str(value)}
    if kind is float:
        return {"doubleValue": _double(value)}
    return _other_value(value)


def _other_value(value: Any) -> JSON:
    """The rarer kinds (and subclasses of the common ones), in the order of the SDK's encoder."""
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"boolValue": bool(value)}
    if isinstance(value, str):
        return {"stringValue": str(value)}
    if isinstance(value, int):
        return {"intValue": str(int(value))}
    if isinstance(value, float):
        return {"doubleValue": _double(float(value))}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode("ascii")}
    if isinstance(value, Sequence):
        values = [_any_value(item) for item in value]
        return {"arrayValue": {"values": values} if values else {}}
    if isinstance(value, Mapping):
        pairs = [{"key": str(key), "value": _any_value(item)} for key, item in value.items()]
        return {"kvlistValue": {"values": pairs} if pairs else {}}
    raise TypeError(f"cannot encode a {type(value).__name__} as an OTLP AnyValue")


def _attributes(attributes: Mapping[str, Any] | None) -> list[JSON]:
    if not attributes:
        return []
    encoded = []
    for key, value in attributes.items():
        try:
            encoded.append({"key": key, "value": _any_value(value)})
        except TypeError:  # the SDK's encoders skip (and log) such a value too
            continue
    return encoded


def _with_attributes(target: JSON, attributes: Mapping[str, Any] | None, dropped: int = 0) -> JSON:
    if attributes:
        target["attributes"] = _attributes(attributes)
    if dropped:
        target["droppedAttributesCount"] = dropped
    return target


class Envelope:
    """Resource and scope dicts, encoded once per object (both are immutable for the SDK), and a
    batch grouped by them (:mod:`._otlp_grouping`)."""

    def __init__(self) -> None:
        self._resources: Canonical[JSON] = Canonical(_resource, 64)
        self._scopes: Canonical[JSON] = Canonical(_scope, 256)

    def resource(self, resource: Resource) -> JSON:
        return self._resources(resource)[1]

    def scope(self, scope: InstrumentationScope | None) -> JSON:
        return self._scopes(scope)[1]

    def group(
        self,
        items: Iterable[Any],
        encode: Callable[[Any], JSON],
        *,
        resources_key: str,
        scopes_key: str,
        items_key: str,
    ) -> JSON:
        """``{resources_key: [{resource, scopes_key: [{scope, items_key: [...]}]}]}``, in first-seen order;
        each item as its JSON text: records encoded as they ended (:class:`~._encoded.EncodedItem`)
        as they are, the others serialised one by one."""
        resources = []
        for resource, resource_encoded, scopes in grouped(items, self._resources, self._scopes):
            scoped = []
            for scope, scope_encoded, scope_items in scopes:
                # Each item serialised on its own, so its dicts are freed before the next is built: a
                # batch held as dicts was ~25 tracked objects per span alive at once, and 512 spans set
                # off 15-16 young collections, each promoting whatever the host had alive at that moment.
                block: JSON = {
                    "scope": scope_encoded,
                    items_key: [
                        orjson.Fragment(item.payload if type(item) is EncodedItem else orjson.dumps(encode(item)))
                        for item in scope_items
                    ],
                }
                if scope is not None and scope.schema_url:
                    block["schemaUrl"] = scope.schema_url
                scoped.append(block)
            resource_block: JSON = {"resource": resource_encoded, scopes_key: scoped}
            if resource.schema_url:
                resource_block["schemaUrl"] = resource.schema_url
            resources.append(resource_block)
        return {resources_key: resources}


def _resource(resource: Resource) -> JSON:
    return _with_attributes({}, resource.attributes)


def _scope(scope: InstrumentationScope | None) -> JSON:
    encoded: JSON = {}
    if scope is not None:
        if scope.name:
            encoded["name"] = scope.name
        if scope.version:
            encoded["version"] = scope.version
        _with_attributes(encoded, scope.attributes)
    return encoded


# -- spans --------------------------------------------------------------------------------------


def _span(item: ReadableSpan | SlimSpan) -> JSON:
    span = as_slim_span(item)
    trace_id, parent_id = span.trace_id, span.parent_id
    encoded: JSON = {
        "traceId": f"{trace_id:032x}" if trace_id is not None else "0" * 32,
        "spanId": f"{span.span_id:016x}" if trace_id is not None else "0" * 16,
        "flags": _HAS_IS_REMOTE | (_IS_REMOTE if span.parent_is_remote else 0),
        "kind": span.kind.value + 1,  # the API counts from INTERNAL = 0, OTLP from UNSPECIFIED = 0
        "startTimeUnixNano": str(span.start_time or 0),
        "endTimeUnixNano": str(span.end_time or 0),
    }
    if span.name:
        encoded["name"] = span.name
    if span.trace_state:
        encoded["traceState"] = ",".join(f"{key}={value}" for key, value in span.trace_state.items())
    if parent_id is not None:
        encoded["parentSpanId"] = f"{parent_id:016x}"
    _with_attributes(encoded, span.attributes, span.dropped_attributes)
    events, links, status_of = span.events, span.links, span.status
    if events:
        encoded["events"] = [
            _with_attributes(
                {"timeUnixNano": str(event.timestamp), **({"name": event.name} if event.name else {})},
                event.attributes,
                event.dropped_attributes,
            )
            for event in events
        ]
    if span.dropped_events:
        encoded["droppedEventsCount"] = span.dropped_events
    if links:
        encoded["links"] = [
            _with_attributes(
                {
                    "traceId": f"{link.context.trace_id:032x}",
                    "spanId": f"{link.context.span_id:016x}",
                    "flags": _HAS_IS_REMOTE | (_IS_REMOTE if link.context.is_remote else 0),
                },
                link.attributes,
                link.dropped_attributes,
            )
            for link in links
        ]
    if span.dropped_links:
        encoded["droppedLinksCount"] = span.dropped_links
    status: JSON = {}
    if status_of is not None and status_of.status_code.value:
        status["code"] = status_of.status_code.value
    if status_of is not None and status_of.description:
        status["message"] = status_of.description
    encoded["status"] = status
    return encoded


def encode_spans(envelope: Envelope, spans: Sequence[ReadableSpan | SlimSpan]) -> JSON:
    """An ``ExportTraceServiceRequest``."""
    return envelope.group(spans, _span, resources_key="resourceSpans", scopes_key="scopeSpans", items_key="spans")


# -- log records ----------------------------------------------------------------------------------


def _log(readable: ReadableLogRecord) -> JSON:
    record = readable.log_record
    encoded: JSON = {"body": _any_value(record.body)}
    if record.timestamp:
        encoded["timeUnixNano"] = str(record.timestamp)
    if record.observed_timestamp:
        encoded["observedTimeUnixNano"] = str(record.observed_timestamp)
    severity = getattr(record.severity_number, "value", 0)
    if severity:
        encoded["severityNumber"] = severity
    if record.severity_text:
        encoded["severityText"] = record.severity_text
    _with_attributes(encoded, record.attributes, readable.dropped_attributes)
    if record.trace_flags:
        encoded["flags"] = int(record.trace_flags)
    if record.trace_id:
        encoded["traceId"] = f"{record.trace_id:032x}"
    if record.span_id:
        encoded["spanId"] = f"{record.span_id:016x}"
    event_name = getattr(record, "event_name", None)
    if event_name:
        encoded["eventName"] = event_name
    return encoded


def encoded_log(record: ReadableLogRecord) -> EncodedItem:
    """One record as JSON text, to be written in a later request."""
    return EncodedItem(record.resource, record.instrumentation_scope, orjson.dumps(_log(record)))


def encode_logs(envelope: Envelope, records: Sequence[ReadableLogRecord | EncodedItem]) -> JSON:
    """An ``ExportLogsServiceRequest``."""
    return envelope.group(records, _log, resources_key="resourceLogs", scopes_key="scopeLogs", items_key="logRecords")


def new_envelope() -> Envelope:
    return Envelope()


def dumps_line(request: JSON) -> bytes:
    """One request as one line (newline included)."""
    return orjson.dumps(request, option=orjson.OPT_APPEND_NEWLINE)
