"""Spans both OTLP encoders' tests compare with the SDK's own encoders: every attribute type, span
kind, status, event, link, scope and a remote parent."""

from __future__ import annotations

import math
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)
from opentelemetry.trace.span import TraceState

RESOURCE = Resource({"service.name": "svc", "n": 1, "pi": 3.25, "flag": True, "tags": ("a", "b")}, "https://r")
ALL_TYPES: dict[str, Any] = {
    "str": "text",
    "empty": "",
    "bool": False,
    "int": -(2**62),
    "zero": 0,
    "float": 0.1,
    "nan": math.nan,
    "inf": -math.inf,
    "strs": ["a", ""],
    "ints": [1, 2],
    "floats": [1.5],
    "bools": [True, False],
    "unicode": 'ünï \u2028 "quoted"',
}


def record_sample_spans(provider: TracerProvider, attributes: dict[str, Any] | None = None) -> None:
    """Ends the sample spans on ``provider`` (its processors get them); ``attributes`` on the first."""
    tracer = provider.get_tracer("scope.a", "1.2", schema_url="https://s", attributes={"scope.attr": "x"})
    other = provider.get_tracer("scope.b")
    remote = SpanContext(
        0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1), trace_state=TraceState([("k", "v"), ("a", "b")])
    )
    with tracer.start_as_current_span("server", kind=SpanKind.SERVER, attributes=attributes or ALL_TYPES) as root:
        root.add_event("event", {"e": 1, "list": ["x"]})
        root.add_event("bare")
        root.set_status(Status(StatusCode.ERROR, "it failed"))
        with other.start_as_current_span("client", kind=SpanKind.CLIENT, links=[Link(remote, {"why": "because"})]):
            pass
    for kind in (SpanKind.PRODUCER, SpanKind.CONSUMER, SpanKind.INTERNAL):
        with tracer.start_as_current_span(f"k{kind.value}", kind=kind) as span:
            span.set_status(StatusCode.OK)
    with tracer.start_as_current_span("child of remote", context=set_span_in_context(NonRecordingSpan(remote))):
        pass


def spans_under_an_equal_resource() -> list[Any]:
    """A span of another provider whose resource equals ``RESOURCE`` but is another object."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource(dict(RESOURCE.attributes), RESOURCE.schema_url))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("scope.b").start_as_current_span("elsewhere"):
        pass
    return list(exporter.get_finished_spans())
