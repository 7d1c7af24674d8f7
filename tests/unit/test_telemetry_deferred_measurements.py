"""Duration records on configure()'s own MeterProvider wait for the next collection: each
collection still sees every record made before it, with its attributes and its span's ids."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from forking import in_forked_child  # type: ignore[import-not-found]  # by file name, as pytest imports it
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import INVALID_SPAN_CONTEXT

from cde_otel import _measurements
from cde_otel._measurements import DeferredHistogram, defer_measurements, deferred_measurements
from cde_otel._swallowed import swallowed_counts
from cde_otel.instrumentation._instruments import duration_histogram
from cde_otel.semconv import ATTR_OPERATION, METRIC_OPERATION_DURATION
from cde_otel.settings import load_settings
from cde_otel.telemetry._pipeline import build_pipeline, shutdown_pipeline
from cde_otel.telemetry._providers import AppProviders
from cde_otel.testing import metric_points


def _deferring_provider() -> tuple[MeterProvider, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    defer_measurements(provider)
    return provider, reader


def _histogram(provider: MeterProvider) -> DeferredHistogram:
    histogram = duration_histogram(provider.get_meter("t"), METRIC_OPERATION_DURATION, "d", meter_provider=provider)
    assert isinstance(histogram, DeferredHistogram)
    return histogram


def test_a_record_waits_for_the_collection_and_keeps_its_attributes_and_its_spans_ids() -> None:
    provider, reader = _deferring_provider()
    histogram = _histogram(provider)
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("op") as span:
        histogram.record(0.25, {ATTR_OPERATION: "save"})
    histogram.record(0.5, {ATTR_OPERATION: "load"})  # outside any span
    measurements = deferred_measurements(provider)
    assert measurements is not None and len(measurements) == 2  # nothing aggregated on the caller's thread

    points = {p.attributes[ATTR_OPERATION]: p for p in metric_points(reader, METRIC_OPERATION_DURATION)}
    assert len(measurements) == 0
    assert (points["save"].count, points["save"].sum, points["load"].count, points["load"].sum) == (1, 0.25, 1, 0.5)
    [exemplar] = points["save"].exemplars  # the trace-based filter saw the span it was made in
    assert (exemplar.trace_id, exemplar.span_id) == (span.get_span_context().trace_id, span.get_span_context().span_id)
    assert points["load"].exemplars == []  # no span: no exemplar, as when aggregated at once
    provider.shutdown()


def test_every_collection_sees_the_records_made_before_it() -> None:
    provider, reader = _deferring_provider()
    histogram = _histogram(provider)
    for expected in (3, 6, 9):
        for _ in range(3):
            histogram.record(0.1, {ATTR_OPERATION: "save"})
        [point] = metric_points(reader, METRIC_OPERATION_DURATION)
        assert point.count == expected
    provider.shutdown()


def test_another_meter_provider_aggregates_at_once() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])  # the application's: its readers are not ours
    histogram = duration_histogram(provider.get_meter("t"), METRIC_OPERATION_DURATION, "d", meter_provider=provider)
    assert not isinstance(histogram, DeferredHistogram)
    assert deferred_measurements(provider) is None
    provider.shutdown()


def test_a_full_queue_or_a_closed_one_aggregates_at_once_and_loses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_measurements, "MAX_QUEUED", 2)
    provider, reader = _deferring_provider()
    histogram = _histogram(provider)
    measurements = deferred_measurements(provider)
    assert measurements is not None
    for _ in range(3):
        histogram.record(0.1, {ATTR_OPERATION: "save"})
    assert len(measurements) == 2  # the third was aggregated where it was made
    measurements.close()
    histogram.record(0.1, {ATTR_OPERATION: "save"})
    assert len(measurements) == 2  # closed: not queued
    [point] = metric_points(reader, METRIC_OPERATION_DURATION)
    assert point.count == 4
    provider.shutdown()


def test_a_record_that_fails_when_replayed_is_counted_and_the_others_still_count() -> None:
    provider, reader = _deferring_provider()
    histogram = _histogram(provider)
    measurements = deferred_measurements(provider)
    assert measurements is not None

    class Failing:
        def record(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("boom")

    histogram.record(0.1, {ATTR_OPERATION: "save"})
    measurements.add(Failing(), 0.1, {}, INVALID_SPAN_CONTEXT)  # type: ignore[arg-type]
    histogram.record(0.1, {ATTR_OPERATION: "save"})
    before = swallowed_counts().get(_measurements.SITE, 0)
    [point] = metric_points(reader, METRIC_OPERATION_DURATION)
    assert point.count == 2
    assert swallowed_counts()[_measurements.SITE] - before == 1
    provider.shutdown()


def test_a_forked_child_drops_its_parents_records() -> None:
    provider, _ = _deferring_provider()
    histogram = _histogram(provider)
    histogram.record(0.1, {ATTR_OPERATION: "save"})
    measurements = deferred_measurements(provider)
    assert measurements is not None

    def child() -> str:
        histogram.record(0.1, {ATTR_OPERATION: "save"})  # its own records still queue
        return str(len(measurements))

    assert in_forked_child(child) == (0, "1")  # the child's one record, not its parent's
    assert len(measurements) == 1  # the parent's queue is untouched
    provider.shutdown()


def _points(line: str, name: str) -> list[dict[str, Any]]:
    """The data points of exponential histogram ``name`` in one line of ``metrics.jsonl``."""
    return [
        point
        for resource in json.loads(line)["resourceMetrics"]
        for scope in resource["scopeMetrics"]
        for metric in scope["metrics"]
        if metric["name"] == name
        for point in metric["exponentialHistogram"]["dataPoints"]
    ]


def _exported_counts(path: Path, name: str) -> list[int]:
    return [int(point["count"]) for line in path.read_text().splitlines() for point in _points(line, name)]


def test_configures_pipeline_defers_and_its_shutdown_exports_what_waits(tmp_path: Path) -> None:
    pipeline = build_pipeline(load_settings({"CDE_OTEL_LOCAL_DIR": str(tmp_path)}), {})
    try:
        provider = pipeline.meter_provider
        histogram = _histogram(provider)
        for _ in range(3):
            histogram.record(0.25, {ATTR_OPERATION: "save"})
        [point] = metric_points(pipeline.health_reader, METRIC_OPERATION_DURATION)  # health's read drains too
        assert point.count == 3
        histogram.record(0.25, {ATTR_OPERATION: "save"})  # waits until the last collection
        measurements = deferred_measurements(provider)
        assert measurements is not None and measurements is pipeline.deferred_measurements
        assert len(measurements) == 1
    finally:
        report = shutdown_pipeline(pipeline)
    assert report.completed
    assert measurements.closed
    assert _exported_counts(tmp_path / "metrics.jsonl", METRIC_OPERATION_DURATION)[-1] == 4


def test_an_application_meter_provider_or_metrics_not_exported_are_never_deferred(tmp_path: Path) -> None:
    settings = load_settings({"CDE_OTEL_LOCAL_DIR": str(tmp_path)})
    app_meter = MeterProvider(metric_readers=[InMemoryMetricReader()])
    pipeline = build_pipeline(settings, {}, AppProviders(meter=app_meter))
    try:
        assert pipeline.deferred_measurements is None
        assert deferred_measurements(app_meter) is None
    finally:
        shutdown_pipeline(pipeline, 0.5)
        app_meter.shutdown()
    # Nothing exported: only health collects, when it is asked; records would wait that long.
    pipeline = build_pipeline(settings, {"OTEL_METRICS_EXPORTER": "none"})
    try:
        assert pipeline.deferred_measurements is None
        assert deferred_measurements(pipeline.meter_provider) is None
    finally:
        shutdown_pipeline(pipeline, 0.5)


_EMBEDDED_DEFAULT = """
from cde_otel import telemetry
from cde_otel.core import Project, ProjectStatus
from cde_otel.instrumentation import CDEInstrumentor
from cde_otel.instrumentation.mcp import MCPInstrumentor

telemetry.configure()
print(type(CDEInstrumentor()._state.duration).__name__, type(MCPInstrumentor()._state.duration).__name__)
project = Project(name="p", path="/nonexistent/p")
project.status = ProjectStatus.ACTIVE
for _ in range(3):
    project.transition_status(ProjectStatus.ARCHIVED)
    project.transition_status(ProjectStatus.ACTIVE)
telemetry.shutdown()
"""


def test_the_embedded_default_defers_and_exports_each_record_with_its_spans_exemplar(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDE_OTEL_", "OTEL_"))}
    env.update(CDE_OTEL_LOCAL_DIR=str(tmp_path), CDE_OTEL_STARTUP_LINE="false")
    done = subprocess.run(
        [sys.executable, "-c", _EMBEDDED_DEFAULT], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["DeferredHistogram", "DeferredHistogram"]
    span_ids = {
        span["spanId"]
        for line in (tmp_path / "traces.jsonl").read_text().splitlines()
        for resource in json.loads(line)["resourceSpans"]
        for scope in resource["scopeSpans"]
        for span in scope["spans"]
        if span["name"] == "Project.transition_status"
    }
    assert len(span_ids) == 6
    last = (tmp_path / "metrics.jsonl").read_text().splitlines()[-1]
    [point] = _points(last, METRIC_OPERATION_DURATION)
    assert int(point["count"]) == 6  # every record, aggregated by the last collection at shutdown
    assert point["exemplars"] and {e["spanId"] for e in point["exemplars"]} <= span_ids
