"""One span model for the CLI, whatever it was read from: an OTLP-JSON file, Jaeger's HTTP API or the SDK.

    SpanRecord.from_otlp(span_json, resource)   # a span of an ExportTraceServiceRequest line
    SpanRecord.from_jaeger(span_json, process)  # a span of Jaeger's /api/traces answer
    SpanRecord.from_readable(span)              # an SDK ReadableSpan (the demo)

Attributes become plain Python values (arrays as lists); Jaeger's own bookkeeping tags
(``span.kind``, ``otel.status_code``, ``error``, ...) become the model's fields, so the same
span reads the same from a file and from Jaeger.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from cde_otel.semconv import ATTR_ERROR_CODE, ATTR_ERROR_TYPE

#: OTLP's SpanKind and StatusCode enums, by number and by their JSON names.
_KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_STATUSES = {0: "unset", 1: "ok", 2: "error"}
#: Tags Jaeger adds on its own (from OTLP fields), not span attributes.
_JAEGER_TAGS = frozenset(
    {"span.kind", "otel.status_code", "otel.status_description", "error", "otel.scope.name",
     "otel.scope.version", "internal.span.format", "w3c.tracestate"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SpanRecord:
    trace_id: str  # 32 lower-case hex digits
    span_id: str  # 16 lower-case hex digits
    parent_id: str | None
    name: str
    kind: str  # internal, server, client, producer, consumer, unspecified
    start_ns: int
    end_ns: int
    status: str  # unset, ok, error
    status_message: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)
    service: str = ""

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    @property
    def is_entry(self) -> bool:
        """A tool call or operation: the root of its trace, or a SERVER span (a request from elsewhere)."""
        return self.parent_id is None or self.kind == "server"

    @property
    def error_code(self) -> str | None:
        """``cde.error.code`` (our E-code), else the conventions' ``error.type``."""
        value = self.attributes.get(ATTR_ERROR_CODE, self.attributes.get(ATTR_ERROR_TYPE))
        return None if value is None else str(value)

    @classmethod
    def from_otlp(cls, span: Mapping[str, Any], resource: Mapping[str, Any]) -> SpanRecord:
        status = span.get("status") or {}
        return cls(
            trace_id=str(span.get("traceId", "")).lower(),
            span_id=str(span.get("spanId", "")).lower(),
            parent_id=str(span.get("parentSpanId") or "").lower() or None,
            name=str(span.get("name", "")),
            kind=_enum(span.get("kind", 0), _KINDS, "SPAN_KIND_"),
            start_ns=int(span.get("startTimeUnixNano", 0)),
            end_ns=int(span.get("endTimeUnixNano", 0)),
            status=_enum(status.get("code", 0), _STATUSES, "STATUS_CODE_"),
            status_message=str(status.get("message", "")),
            attributes=otlp_attributes(span.get("attributes")),
            service=str(resource.get("service.name", "")),
        )

    @classmethod
    def from_jaeger(cls, span: Mapping[str, Any], process: Mapping[str, Any]) -> SpanRecord:
        tags = {tag["key"]: _jaeger_value(tag) for tag in span.get("tags") or ()}
        parents = [r["spanID"] for r in span.get("references") or () if r.get("refType") == "CHILD_OF"]
        start_ns = int(span.get("startTime", 0)) * 1000
        return cls(
            trace_id=str(span.get("traceID", "")).lower().rjust(32, "0"),
            span_id=str(span.get("spanID", "")).lower().rjust(16, "0"),
            parent_id=parents[0].lower().rjust(16, "0") if parents else None,
            name=str(span.get("operationName", "")),
            kind=str(tags.get("span.kind", "internal")),
            start_ns=start_ns,
            end_ns=start_ns + int(span.get("duration", 0)) * 1000,
            status=str(tags.get("otel.status_code", "unset")).lower(),
            status_message=str(tags.get("otel.status_description", "")),
            attributes={key: value for key, value in tags.items() if key not in _JAEGER_TAGS},
            service=str(process.get("serviceName", "")),
        )

    @classmethod
    def from_readable(cls, span: ReadableSpan) -> SpanRecord:
        parent = span.parent.span_id if span.parent is not None else None
        status = span.status.status_code
        return cls(
            trace_id=f"{span.context.trace_id:032x}",
            span_id=f"{span.context.span_id:016x}",
            parent_id=None if parent is None else f"{parent:016x}",
            name=span.name,
            kind=span.kind.name.lower(),
            start_ns=span.start_time or 0,
            end_ns=span.end_time or 0,
            status={StatusCode.ERROR: "error", StatusCode.OK: "ok"}.get(status, "unset"),
            status_message=span.status.description or "",
            attributes=dict(span.attributes or {}),
            service=str(span.resource.attributes.get("service.name", "")),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_id": self.parent_id,
            "name": self.name,
            "kind": self.kind,
            "start_unix_nano": self.start_ns,
            "duration_ms": round(self.duration_ms, 6),
            "status": self.status,
            "status_message": self.status_message,
            "error_code": self.error_code,
            "attributes": dict(self.attributes),
            "service": self.service,
        }


def _enum(value: Any, names: Mapping[int, str], prefix: str) -> str:
    if isinstance(value, str):
        return value.removeprefix(prefix).lower() if not value.isdigit() else names.get(int(value), "unspecified")
    return names.get(int(value), "unspecified")


def any_value(value: Mapping[str, Any]) -> Any:
    """An OTLP/JSON ``AnyValue`` as a plain value (int64 arrives as a string)."""
    for key, inner in value.items():
        if key == "intValue":
            return int(inner)
        if key == "arrayValue":
            return [any_value(item) for item in inner.get("values") or ()]
        if key == "kvlistValue":
            return otlp_attributes(inner.get("values"))
        return inner
    return None


def otlp_attributes(attributes: Any) -> dict[str, Any]:
    return {item["key"]: any_value(item.get("value") or {}) for item in attributes or ()}


def _jaeger_value(tag: Mapping[str, Any]) -> Any:
    value = tag.get("value")
    if tag.get("type") == "int64":
        return int(value)  # type: ignore[arg-type]
    if tag.get("type") == "string" and isinstance(value, str) and value[:1] == "[":
        try:  # Jaeger flattens array attributes into their JSON text
            parsed = json.loads(value)
        except ValueError:
            return value
        return parsed if isinstance(parsed, list) else value
    return value


def spans_of_request(request: Mapping[str, Any]) -> Iterator[SpanRecord]:
    """Every span of one ExportTraceServiceRequest (an OTLP-JSON traces line)."""
    for resource_spans in request.get("resourceSpans") or ():
        resource = otlp_attributes((resource_spans.get("resource") or {}).get("attributes"))
        for scope_spans in resource_spans.get("scopeSpans") or ():
            for span in scope_spans.get("spans") or ():
                yield SpanRecord.from_otlp(span, resource)
