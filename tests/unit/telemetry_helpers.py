"""In-memory OpenTelemetry plumbing for unit tests, with deterministic ids."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator

from cde_otel.settings import load_settings
from cde_otel.telemetry._histograms import duration_views


class SequentialIdGenerator(IdGenerator):
    """Trace ids 1, 2, 3... and span ids 1, 2, 3...: assertions can name them."""

    def __init__(self) -> None:
        self._trace = itertools.count(1)
        self._span = itertools.count(1)

    def generate_trace_id(self) -> int:
        return next(self._trace)

    def generate_span_id(self) -> int:
        return next(self._span)


@dataclass
class Telemetry:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def by_name(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.finished() if s.name == name]

    def points(self, metric: str) -> list[Any]:
        data = self.metrics.get_metrics_data()
        found: list[Any] = []
        if data is None:
            return found
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == metric:
                        found.extend(m.data.data_points)
        return found


def make_telemetry(histogram: str = "exponential", views: bool = True) -> Telemetry:
    settings = load_settings({})
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(id_generator=SequentialIdGenerator())
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(
        metric_readers=[reader],
        views=duration_views(histogram, settings.histogram_max_size) if views else (),
    )
    return Telemetry(tracer_provider, meter_provider, spans, reader)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any telemetry setting or inherited trace context, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDE_OTEL_", "OTEL_", "TRACEPARENT", "BAGGAGE"))}
    env.update(extra)
    return env


def otlp_json_spans(path: Path) -> Iterator[dict[str, Any]]:
    """Spans of an OTLP-JSON lines file (the embedded default's traces.jsonl), each with flat
    ``attrs`` and its ``resource`` attributes."""
    for line in path.read_text().splitlines():
        for resource_spans in json.loads(line)["resourceSpans"]:
            resource = {a["key"]: a["value"] for a in resource_spans["resource"]["attributes"]}
            for scope in resource_spans["scopeSpans"]:
                for span in scope["spans"]:
                    span["attrs"] = {a["key"]: next(iter(a["value"].values())) for a in span.get("attributes", [])}
                    span["resource"] = resource
                    yield span


def walk(spans: list[ReadableSpan]) -> Iterator[tuple[int, ReadableSpan]]:
    """Depth-first (depth, span) over a list of finished spans."""
    children: dict[int | None, list[ReadableSpan]] = {}
    ids = {s.context.span_id for s in spans}
    for s in spans:
        parent = s.parent.span_id if s.parent and s.parent.span_id in ids else None
        children.setdefault(parent, []).append(s)

    def visit(parent: int | None, depth: int) -> Iterator[tuple[int, ReadableSpan]]:
        for s in sorted(children.get(parent, []), key=lambda x: x.start_time or 0):
            yield depth, s
            yield from visit(s.context.span_id, depth + 1)

    yield from visit(None, 0)
