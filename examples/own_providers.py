"""The instrumentor with your own providers, as any OpenTelemetry contrib instrumentation.

Run it with ``python examples/own_providers.py``.
"""

from __future__ import annotations

import sys
import tempfile

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cde_otel.core import FileSystemProjectRepository
from cde_otel.instrumentation import CDEInstrumentor


def main() -> list[str]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])  # no views: the advisory boundaries apply

    CDEInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        repo = FileSystemProjectRepository()
        project = repo.get_or_create(tempfile.mkdtemp(prefix="cde-example-"))
        project.activate()
        project.start_feature("Instrumented with my own providers")
        repo.save(project)
    finally:
        CDEInstrumentor().uninstrument()
    names = sorted({span.name for span in spans.get_finished_spans()})
    sys.stdout.write("spans: " + ", ".join(names) + "\n")
    return names


if __name__ == "__main__":
    main()
