"""Size at the boundary: a 10 MB message never becomes a 10 MB log body, exception event or log line.

A message (or an exception's) is cut to ``TEXT_LIMIT`` characters and a stack trace to its last
``STACK_LIMIT`` in telemetry, scrubbed before the cut, wherever it goes: OpenTelemetry log records
(structlog and stdlib), the JSON lines of a log file or stream, a span's exception event and status
description (ours, and another instrumentation's through the exporter backstop).
"""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from cde_otel.instrumentation._wrapper import record_exception_scrubbed
from cde_otel.logging import get_logger, setup_logging
from cde_otel.redaction import STACK_LIMIT, TEXT_LIMIT, scrub_exception
from cde_otel.telemetry._encoded import slim_span
from cde_otel.telemetry._export_status import scrub_slim_span, scrub_span

HUGE = "password=hunter2 " + "x" * 10_000_000
# What a bounded text may add to its limit: the "...[N chars cut]" marker.
SLACK = 64


pytestmark = pytest.mark.usefixtures("logging_reset_after")


def test_huge_log_messages_are_cut_in_otel_records_and_lines(
    provider: LoggerProvider, exporter: InMemoryLogRecordExporter
) -> None:
    stream = io.StringIO()
    setup_logging("info", stream=stream, logger_provider=provider)
    logging.getLogger("lib").warning(HUGE)
    get_logger("app").warning(HUGE, detail=HUGE)
    try:
        raise RuntimeError(HUGE)
    except RuntimeError:
        logging.getLogger("lib").exception("failed")

    records = [r.log_record for r in exporter.get_finished_logs()]
    assert len(records) == 3
    for record in records:
        assert len(str(record.body)) <= TEXT_LIMIT + SLACK
        attributes = dict(record.attributes or {})
        assert len(json.dumps(attributes, default=str)) <= 3 * STACK_LIMIT
        assert "hunter2" not in str(record.body) + json.dumps(attributes, default=str)
    failed = dict(records[2].attributes or {})
    assert len(str(failed["exception.message"])) <= TEXT_LIMIT + SLACK
    assert len(str(failed["exception.stacktrace"])) <= STACK_LIMIT + SLACK

    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    assert all(len(line) <= 3 * STACK_LIMIT for line in lines)
    assert "hunter2" not in stream.getvalue()
    assert json.loads(lines[0])["event"].endswith("chars cut]")


@pytest.mark.parametrize(
    "scrub",
    [scrub_span, lambda span: scrub_slim_span(slim_span(span))],
    ids=["at export", "as queued slim"],
)
def test_huge_exception_messages_are_cut_on_spans(scrub: Any) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests")
    with tracer.start_as_current_span("ours") as span:
        message = record_exception_scrubbed(span, RuntimeError(HUGE))
        span.set_status(Status(StatusCode.ERROR, message))
    with tracer.start_as_current_span("foreign") as span:  # another instrumentation: the SDK's own call
        span.record_exception(RuntimeError(HUGE))
        span.set_status(Status(StatusCode.ERROR, HUGE))

    exported = [scrub(finished) for finished in exporter.get_finished_spans()]
    assert len(exported) == 2
    for finished in exported:
        (event,) = finished.events
        attributes = dict(event.attributes or {})
        assert len(str(attributes["exception.message"])) <= TEXT_LIMIT + SLACK
        assert len(str(attributes["exception.stacktrace"])) <= STACK_LIMIT + SLACK
        assert len(finished.status.description or "") <= TEXT_LIMIT + SLACK
        assert "hunter2" not in str(attributes) + (finished.status.description or "")


def test_scrub_exception_keeps_the_frames_of_a_huge_message() -> None:
    def fail() -> None:
        raise ValueError(HUGE)

    try:
        fail()
    except ValueError as error:
        name, message, stack = scrub_exception(error)
    assert name == "ValueError"
    assert len(message) <= TEXT_LIMIT + SLACK and "hunter2" not in message
    assert len(stack) <= STACK_LIMIT + SLACK and "in fail" in stack  # the frames survive the cut
