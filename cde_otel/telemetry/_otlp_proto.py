"""OTLP protobuf encoding of the SDK's spans and log records, written straight to bytes.

The bytes are those of ``encode_spans(spans).SerializePartialToString()`` (and ``encode_logs``) of
``opentelemetry-exporter-otlp-proto-common``: the same messages, fields in field-number order,
proto3 defaults left out, the same presence for submessages (a span's ``status``, a record's
``body``, a scope, a resource) and for ``AnyValue``'s oneof. The tests compare the two byte for byte.

Why: the stock encoder builds a protobuf object per span, attribute and value before serialising;
at ~50 µs per span it was most of what OTLP/HTTP export cost a server per tool call. Writing the
wire format directly costs a fraction of that. Anything this module does not encode exactly as the
stock encoder would (a value out of int64 range, an unsupported type, a string that is not valid
UTF-8) raises :class:`Unencodable`, and the caller falls back to the stock encoder for that batch.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind, StatusCode

from cde_otel.telemetry._encoded import EncodedItem, SlimSpan, as_slim_span
from cde_otel.telemetry._otlp_grouping import Canonical, grouped

_pack_double = struct.Struct("<d").pack
_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_SMALL = [bytes((n,)) for n in range(0x80)]
# SpanFlags: the parent's "is remote" bit is known (0x100), and set (0x200) when the parent is remote.
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200


class Unencodable(ValueError):
    """Something the stock encoder handles in its own way: encode this batch with it."""


def _varint(value: int) -> bytes:
    if value < 0x80:
        return _SMALL[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its tag, the payload's length, the payload."""
    return tag + _varint(len(payload)) + payload


def _text(value: str) -> bytes:
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as error:  # a lone surrogate: the stock encoder decides what happens
        raise Unencodable(str(error)) from error


# -- AnyValue, KeyValue ----------------------------------------------------------------------------
def _any_value(value: Any) -> bytes:
    """An ``AnyValue`` message (its oneof always present, default values included)."""
    kind = type(value)
    if kind is str:
        return _field(b"\x0a", _text(value))
    if kind is bool:
        return b"\x10\x01" if value else b"\x10\x00"
    if kind is int:
        return _int_value(value)
    if kind is float:
        return b"\x21" + _pack_double(value)
    return _other_value(value)


def _int_value(value: int) -> bytes:
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise Unencodable(f"{value} is out of int64 range")
    return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)


def _other_value(value: Any) -> bytes:
    """The rarer kinds and subclasses, tested in the stock encoder's order."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _field(b"\x0a", _text(value))
    if isinstance(value, int):
        return _int_value(int(value))
    if isinstance(value, float):
        return b"\x21" + _pack_double(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, Sequence):
        return _field(b"\x2a", b"".join(_field(b"\x0a", _any_value(item)) for item in value))
    if isinstance(value, Mapping):
        return _field(b"\x32", b"".join(_field(b"\x0a", _key_value(str(k), v)) for k, v in value.items()))
    raise Unencodable(f"no AnyValue for {type(value).__name__}")


def _key_value(key: str, value: Any) -> bytes:
    return _key(key) + _field(b"\x12", _any_value(value))


def _key(key: str) -> bytes:
    """A ``KeyValue``'s key field, encoded once per key (attribute keys are few and repeat)."""
    encoded = _KEYS.get(key)
    if encoded is None:
        encoded = _field(b"\x0a", _text(key)) if key else b""
        if len(_KEYS) < 4096:
            _KEYS[key] = encoded
    return encoded


_KEYS: dict[str, bytes] = {}


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
    if not attributes:
        return b""
    small, keys = _SMALL, _KEYS
    out = []
    for key, value in attributes.items():
        if type(value) is str:  # most attribute values: inlined
            text = value.encode("utf-8")
            size = len(text)
            any_value = b"\x0a" + (small[size] if size < 0x80 else _varint(size)) + text
        else:
            any_value = _any_value(value)
        size = len(any_value)
        pair = (keys.get(key) or _key(key)) + b"\x12" + (small[size] if size < 0x80 else _varint(size)) + any_value
        size = len(pair)
        out.append(tag + (small[size] if size < 0x80 else _varint(size)) + pair)
    return b"".join(out)


def _uint(tag: bytes, value: int | None) -> bytes:
    return tag + _varint(value) if value else b""


def _fixed64(tag: bytes, value: int | None) -> bytes:
    return tag + _pack_fixed64(value) if value else b""


def _string(tag: bytes, value: str | None) -> bytes:
    return _field(tag, _text(value)) if value else b""


# -- resources and scopes, encoded once per object --------------------------------------------------
class Envelope:
    """The encoded resources and scopes of a process, and a batch grouped by them as the stock
    encoder groups it (:mod:`._otlp_grouping`)."""

    def __init__(self) -> None:
        self._resources: Canonical[bytes] = Canonical(_resource, 64)
        self._scopes: Canonical[bytes] = Canonical(_scope, 256)

    def request(self, items: Iterable[Any], encode: Callable[[Any], bytes]) -> bytes:
        """The ``Export*ServiceRequest``: resources (field 1), each with its scopes (field 2), each
        with its items (field 2) and schema URLs (field 3). Records encoded as they ended
        (:class:`~._encoded.EncodedItem`) bring their bytes."""
        out = []
        for resource, resource_field, scopes in grouped(items, self._resources, self._scopes):
            encoded_scopes = [
                _field(
                    b"\x12",
                    scope_field
                    + b"".join(
                        _field(b"\x12", item.payload if type(item) is EncodedItem else encode(item))
                        for item in scope_items
                    )
                    + _string(b"\x1a", scope.schema_url if scope else None),
                )
                for scope, scope_field, scope_items in scopes
            ]
            out.append(
                _field(b"\x0a", resource_field + b"".join(encoded_scopes) + _string(b"\x1a", resource.schema_url))
            )
        return b"".join(out)


def _resource(resource: Resource) -> bytes:
    """The ``resource`` field of a ``Resource*``."""
    return _field(b"\x0a", _attributes(b"\x0a", resource.attributes))


def _scope(scope: InstrumentationScope | None) -> bytes:
    """The ``scope`` field of a ``Scope*``."""
    encoded = b""
    if scope is not None:
        name, version = _string(b"\x0a", scope.name), _string(b"\x12", scope.version)
        encoded = name + version + _attributes(b"\x1a", scope.attributes)
    return _field(b"\x0a", encoded)


# -- spans ------------------------------------------------------------------------------------------
# The fields every span has, encoded once: its kind (the API counts from INTERNAL = 0, OTLP from 1),
# its flags (the parent's "is remote" bit known, and set for a remote parent), a status without a message.
_KINDS = {kind: b"\x30" + _varint(kind.value + 1) for kind in SpanKind}
_LOCAL_PARENT = b"\x85\x01" + _pack_fixed32(_HAS_IS_REMOTE)
_REMOTE_PARENT = b"\x85\x01" + _pack_fixed32(_HAS_IS_REMOTE | _IS_REMOTE)
_STATUSES = {code: _field(b"\x7a", _uint(b"\x18", code.value)) for code in StatusCode}


def _span(item: ReadableSpan | SlimSpan) -> bytes:
    span = as_slim_span(item)
    trace_id, parent_id, trace_state, name = span.trace_id, span.parent_id, span.trace_state, span.name
    if trace_id is None:
        raise Unencodable("a span without a context")
    start, end, events, links, status = span.start_time, span.end_time, span.events, span.links, span.status
    return b"".join(
        (
            b"\x0a\x10",
            trace_id.to_bytes(16, "big"),
            b"\x12\x08",
            span.span_id.to_bytes(8, "big"),
            _trace_state(trace_state) if trace_state else b"",
            b"\x22\x08" + parent_id.to_bytes(8, "big") if parent_id is not None else b"",
            _field(b"\x2a", _text(name)) if name else b"",
            _KINDS[span.kind],
            b"\x39" + _pack_fixed64(start) if start else b"",
            b"\x41" + _pack_fixed64(end) if end else b"",
            _attributes(b"\x4a", span.attributes),
            _uint(b"\x50", span.dropped_attributes),
            b"".join(map(_event, events)) if events else b"",
            _uint(b"\x60", span.dropped_events),
            b"".join(map(_link, links)) if links else b"",
            _uint(b"\x70", span.dropped_links),
            _status(status) if status is not None else b"",
            _REMOTE_PARENT if span.parent_is_remote else _LOCAL_PARENT,
        )
    )


def _trace_state(trace_state: Mapping[str, str]) -> bytes:
    return _string(b"\x1a", ",".join(f"{key}={value}" for key, value in trace_state.items()))


def _event(event: Any) -> bytes:
    return _field(
        b"\x5a",
        _fixed64(b"\x09", event.timestamp)
        + _string(b"\x12", event.name)
        + _attributes(b"\x1a", event.attributes)
        + _uint(b"\x20", event.dropped_attributes),
    )


def _link(link: Any) -> bytes:
    linked = link.context
    return _field(
        b"\x6a",
        b"\x0a\x10"
        + linked.trace_id.to_bytes(16, "big")
        + b"\x12\x08"
        + linked.span_id.to_bytes(8, "big")
        + _attributes(b"\x22", link.attributes)
        + _uint(b"\x28", link.dropped_attributes)
        + b"\x35"
        + _pack_fixed32(_HAS_IS_REMOTE | (_IS_REMOTE if linked.is_remote else 0)),
    )


def _status(status: Any) -> bytes:
    if not status.description:
        return _STATUSES[status.status_code]
    return _field(b"\x7a", _string(b"\x12", status.description) + _uint(b"\x18", status.status_code.value))


def encode_spans(envelope: Envelope, spans: Sequence[ReadableSpan | SlimSpan]) -> bytes:
    """A serialised ``ExportTraceServiceRequest``."""
    return envelope.request(spans, _span)


# -- log records ------------------------------------------------------------------------------------
def _log(readable: ReadableLogRecord) -> bytes:
    record = readable.log_record
    trace_flags = record.trace_flags
    return b"".join(
        (
            _fixed64(b"\x09", record.timestamp),
            _uint(b"\x10", getattr(record.severity_number, "value", None)),
            _string(b"\x1a", record.severity_text),
            _field(b"\x2a", _any_value(record.body)),
            _attributes(b"\x32", record.attributes),
            _uint(b"\x38", readable.dropped_attributes),
            b"\x45" + _pack_fixed32(int(trace_flags)) if trace_flags else b"",
            b"\x4a\x10" + record.trace_id.to_bytes(16, "big") if record.trace_id else b"",
            b"\x52\x08" + record.span_id.to_bytes(8, "big") if record.span_id else b"",
            _fixed64(b"\x59", record.observed_timestamp),
            _string(b"\x62", getattr(record, "event_name", None)),
        )
    )


def encoded_log(record: ReadableLogRecord) -> EncodedItem:
    """One record's ``LogRecord`` message, to be sent in a later request."""
    return EncodedItem(record.resource, record.instrumentation_scope, _log(record))


def encode_logs(envelope: Envelope, records: Sequence[ReadableLogRecord | EncodedItem]) -> bytes:
    """A serialised ``ExportLogsServiceRequest``."""
    return envelope.request(records, _log)
