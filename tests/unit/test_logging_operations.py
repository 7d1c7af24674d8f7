"""Operation events: one JSON line per operation where a sink is configured, a log record per failure or slow one.

And the contract the wrapper keeps with them: the span and the histogram measure the same interval.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

from cde_otel.core import Project
from cde_otel.errors import FeatureError
from cde_otel.instrumentation import CDEInstrumentor, _wrapper
from cde_otel.logging import OPERATIONS_LOGGER, HandlerSink, OperationEvents, StreamSink
from cde_otel.logging._handlers import file_handler
from cde_otel.semconv import ATTR_OPERATION, METRIC_OPERATION_DURATION
from cde_otel.settings import load_settings
from cde_otel.testing import CapturedLines, CapturedTelemetry, ManualClock, capture_operation_lines, capture_telemetry


@pytest.fixture
def logs() -> Iterator[tuple[LoggerProvider, InMemoryLogRecordExporter]]:
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]  # untyped SDK constructor
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def instrumented(captured: CapturedLines | None = None) -> CapturedTelemetry:
    telemetry = capture_telemetry()
    CDEInstrumentor().instrument(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        operation_events=captured.events if captured is not None else None,
        log_operations=captured is not None,
    )
    return telemetry


@pytest.fixture(autouse=True)
def _uninstrument() -> Iterator[None]:
    yield
    if CDEInstrumentor().is_instrumented_by_opentelemetry:
        CDEInstrumentor().uninstrument()


def test_one_end_line_per_operation_with_ids_duration_and_trace(tmp_path: Path) -> None:
    captured = capture_operation_lines()
    telemetry = instrumented(captured)
    project = Project(name="p", path=str(tmp_path))
    project.activate()
    feature = project.start_feature("Add search")

    lines = captured.lines()
    assert [line["event"] for line in lines] == [
        "Project.transition_status succeeded",
        "Project.activate succeeded",
        "Project.start_feature succeeded",
    ]
    start = lines[-1]
    assert (start["level"], start["logger"], start["operation"]) == ("info", OPERATIONS_LOGGER, "Project.start_feature")
    assert (start["outcome"], start["project_id"], start["feature_id"]) == ("ok", project.id, feature.id)
    assert "error_code" not in start and "slow" not in start
    assert start["timestamp"].endswith("Z")
    span = telemetry.spans("Project.start_feature")[0]
    assert start["trace_id"] == format(span.context.trace_id, "032x")
    assert start["span_id"] == format(span.context.span_id, "016x")
    assert start["correlation_id"] == start["trace_id"]  # a top-level operation's correlation id
    assert start["duration_ms"] == round((span.end_time - span.start_time) / 1e6, 3)


def test_failed_operation_line_and_log_record(tmp_path: Path, logs: tuple[LoggerProvider, Any]) -> None:
    provider, exporter = logs
    captured = capture_operation_lines(logger_provider=provider)
    telemetry = instrumented(captured)
    project = Project(name="p", path=str(tmp_path))
    with pytest.raises(FeatureError):
        project.start_feature("too early")

    (line,) = captured.lines()
    assert (line["event"], line["level"], line["outcome"], line["error_code"]) == (
        "Project.start_feature failed", "warning", "error", "E101",
    )  # fmt: skip
    (record,) = [r.log_record for r in exporter.get_finished_logs()]
    span = telemetry.spans("Project.start_feature")[0]
    assert record.body == "Project.start_feature failed"
    assert record.severity_number is SeverityNumber.WARN
    assert (record.trace_id, record.span_id) == (span.context.trace_id, span.context.span_id)
    assert dict(record.attributes or {})["error_code"] == "E101"


def test_an_ok_operation_makes_no_log_record(tmp_path: Path, logs: tuple[LoggerProvider, Any]) -> None:
    provider, exporter = logs
    captured = capture_operation_lines(logger_provider=provider)
    instrumented(captured)
    Project(name="p", path=str(tmp_path)).activate()
    assert captured.lines() and exporter.get_finished_logs() == ()


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("debug", ["save started", "save succeeded", "save failed"]),
        ("info", ["save succeeded", "save failed"]),
        ("warning", ["save failed"]),
        ("error", []),
    ],
)
def test_the_level_decides_which_lines(level: str, expected: list[str]) -> None:
    captured = capture_operation_lines(load_settings({"CDE_OTEL_LOG_LEVEL": level}))
    events, span = captured.events, capture_telemetry().tracer_provider.get_tracer("t").start_span("save")
    if events.start_on:
        events.started("save", span, 0, {})
    events.ended("save", span, 0, 1_000_000, {})
    events.ended("save", span, 0, 1_000_000, {}, error_code="E201")
    assert [line["event"] for line in captured.lines()] == expected


class Busy:
    def work(self, cpu_seconds: float) -> None:
        end = time.thread_time() + cpu_seconds
        while time.thread_time() < end:
            pass


def test_slow_operation_warns_with_rss_and_later_with_cpu_time() -> None:
    captured = capture_operation_lines(load_settings({"CDE_OTEL_SLOW_OPERATION_MS": "20"}))
    telemetry = capture_telemetry()
    spec = f"{__name__}:Busy.work"
    CDEInstrumentor().instrument(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        operation_events=captured.events,
        targets=[spec],
    )
    ops = CDEInstrumentor().operation_telemetry
    assert ops is not None
    busy = Busy()
    busy.work(0)
    assert spec not in ops.slow_targets  # never slow: its CPU clock is never read
    busy.work(0.03)  # slow, the first time: RSS, no CPU time (the clock was not read at its start)
    assert spec in ops.slow_targets
    busy.work(0.03)  # slow again: now the thread's CPU time too

    fast, first, second = captured.lines()
    assert fast["level"] == "info" and "slow" not in fast
    assert (first["level"], first["slow"]) == ("warning", True) and first["rss_mb"] > 1 and "cpu_ms" not in first
    assert second["slow"] is True and second["cpu_ms"] >= 25.0 and second["rss_mb"] > 1


class Timed:
    """An operation whose duration is whatever the fake wall clock is moved by while it runs."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock

    def run(self, seconds: float) -> None:
        self.clock.advance(seconds)


def test_default_slow_threshold_is_measured_on_the_operation_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ManualClock(1_700_000_000.0)
    fake_time = types.SimpleNamespace(time_ns=lambda: round(clock() * 1e9), thread_time_ns=time.thread_time_ns)
    monkeypatch.setattr(_wrapper, "time", fake_time)
    captured = capture_operation_lines()  # default settings: no threshold given
    telemetry = capture_telemetry()
    CDEInstrumentor().instrument(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        operation_events=captured.events,
        targets=[f"{__name__}:Timed.run"],
    )
    timed = Timed(clock)
    timed.run(0.999)
    timed.run(1.001)
    timed.run(0.5)

    under, over, after = captured.lines()
    assert (under["level"], under["duration_ms"]) == ("info", 999.0) and "slow" not in under
    assert (over["level"], over["slow"], over["duration_ms"]) == ("warning", True, 1001.0)
    assert after["level"] == "info" and "slow" not in after


def test_lines_are_buffered_and_flushed_at_a_warning_and_at_close() -> None:
    stream = io.StringIO()
    events = OperationEvents([StreamSink(stream)], flush_interval_s=3600)
    span = capture_telemetry().tracer_provider.get_tracer("t").start_span("op")
    events.ended("op", span, 0, 1000, {})
    events.ended("op", span, 0, 1000, {})
    assert stream.getvalue() == ""  # buffered: one write per batch
    events.ended("op", span, 0, 1000, {}, error_code="E201")
    assert [json.loads(line)["outcome"] for line in stream.getvalue().splitlines()] == ["ok", "ok", "error"]
    events.ended("op", span, 0, 1000, {})
    events.close()
    assert len(stream.getvalue().splitlines()) == 4
    events.ended("op", span, 0, 1000, {})  # after close: dropped, never raised
    events.close()
    assert len(stream.getvalue().splitlines()) == 4


def flushers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "cde-otel-operation-lines" and t.is_alive()}


def test_the_flusher_writes_on_its_timer() -> None:
    before = flushers()
    stream = io.StringIO()
    events = OperationEvents([StreamSink(stream)], flush_interval_s=0.05)
    span = capture_telemetry().tracer_provider.get_tracer("t").start_span("op")
    events.ended("op", span, 0, 1000, {})
    deadline = time.monotonic() + 10
    while not stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert json.loads(stream.getvalue())["event"] == "op succeeded"
    assert len(flushers() - before) == 1
    events.close()
    assert flushers() - before == set()


def test_no_sink_no_line_work_and_no_thread(logs: tuple[LoggerProvider, Any]) -> None:
    provider, exporter = logs
    before = flushers()
    events = OperationEvents((), logger_provider=provider)
    span = capture_telemetry().tracer_provider.get_tracer("t").start_span("op")
    events.ended("op", span, 0, 1000, {})
    assert not events.start_on
    assert flushers() - before == set()
    events.ended("op", span, 0, 1000, {}, error_code="E201")  # still a log record: failures are kept
    assert [r.log_record.body for r in exporter.get_finished_logs()] == ["op failed"]


def test_file_sink_writes_each_batch_through_the_rotating_handler(tmp_path: Path) -> None:
    handler = file_handler(tmp_path / "ops.log", "size", 10_000_000, 2)
    events = OperationEvents([HandlerSink(handler)], flush_interval_s=3600)
    span = capture_telemetry().tracer_provider.get_tracer("t").start_span("op")
    for _ in range(3):
        events.ended("op", span, 0, 1000, {"project_id": "p-1"})
    events.close()
    handler.close()
    lines = (tmp_path / "ops.log").read_text().splitlines()
    assert [json.loads(line)["project_id"] for line in lines] == ["p-1"] * 3


def test_span_and_histogram_measure_the_same_interval(tmp_path: Path) -> None:
    telemetry = instrumented()
    project = Project(name="p", path=str(tmp_path))
    for _ in range(25):
        project.activate()
        project.archive()
    spans = telemetry.spans("Project.transition_status")
    points = [p for p in telemetry.points(METRIC_OPERATION_DURATION)
              if p.attributes[ATTR_OPERATION] == "Project.transition_status"]  # fmt: skip
    (point,) = points
    durations_ns = [(s.end_time or 0) - (s.start_time or 0) for s in spans]
    assert point.count == len(spans) == 50
    assert abs(point.sum * 1e9 - sum(durations_ns)) <= len(spans)  # within 1 ns per operation
    assert point.min * 1e9 == pytest.approx(min(durations_ns), abs=1)
    assert point.max * 1e9 == pytest.approx(max(durations_ns), abs=1)


def test_a_failing_sink_never_reaches_the_operation(tmp_path: Path) -> None:
    class Broken:
        def write_lines(self, data: str) -> None:
            raise OSError(28, "No space left on device")

    events = OperationEvents([Broken()], level=logging.INFO)
    telemetry = capture_telemetry()
    CDEInstrumentor().instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider, operation_events=events
    )
    project = Project(name="p", path=str(tmp_path))
    with pytest.raises(FeatureError):
        project.start_feature("too early")  # a WARNING line: written at once, into the broken sink
    project.activate()
    assert [s.name for s in telemetry.spans()][-1] == "Project.activate"


def test_a_forked_child_starts_with_no_pending_lines_and_writes_its_own(tmp_path: Path) -> None:
    import os

    out = tmp_path / "lines.jsonl"
    events = OperationEvents([StreamSink(out.open("a"))], flush_interval_s=3600)
    span = capture_telemetry().tracer_provider.get_tracer("t").start_span("op")
    events.ended("parent op", span, 0, 1000, {})  # pending in the parent
    pid = os.fork()
    if pid == 0:  # the child: the parent's pending line is not its to write
        try:
            events.ended("child op", span, 0, 1000, {})
            events.close()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    events.close()
    assert sorted(json.loads(line)["event"] for line in out.read_text().splitlines()) == [
        "child op succeeded",
        "parent op succeeded",
    ]
