"""A client's trace context and correlation id: bounded and cleaned before they reach telemetry or logs.

The correlation id is printable, without line breaks or escape sequences, and at most 128
characters wherever it comes from (``_meta``, baggage, ``correlation()``). A ``baggage`` header is
cut to the W3C limit at a member boundary before any propagator of ours parses it, parsed once,
and no warning of OpenTelemetry's quotes a whole header.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.baggage.propagation import W3CBaggagePropagator

from cde_otel._correlation import (
    MAX_BAGGAGE_BYTES,
    MAX_CORRELATION_ID,
    PROPAGATION_LOGGERS,
    bounded_carrier,
    clean_correlation_id,
    correlation,
    current_correlation_id,
    dropped_context,
)
from cde_otel.instrumentation.mcp._telemetry import MCPTelemetry
from cde_otel.logging import attach_logging, get_logger, reset_logging, setup_logging
from cde_otel.semconv import ATTR_CORRELATION_ID
from cde_otel.settings import load_settings
from cde_otel.testing import CapturedTelemetry

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
HOSTILE_IDS = [
    "run-1\ninjected: true",
    "run-1\r\n\x1b[31mred\x1b[0m",
    "\x1b]0;title\x07run-1",
    "run-1" + "x" * 100_000,
    "run-1\u2028next",
]
HUGE_BAGGAGE = "cde.correlation_id=run-1," + ",".join(f"k{n}=" + "v" * 90 for n in range(110_000))  # ~10 MB


def _safe(cid: object) -> bool:
    return isinstance(cid, str) and 0 < len(cid) <= MAX_CORRELATION_ID and cid.isprintable()


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    reset_logging()


@pytest.mark.parametrize("raw", HOSTILE_IDS)
def test_a_hostile_correlation_id_is_cleaned(raw: str) -> None:
    cleaned = clean_correlation_id(raw)
    assert _safe(cleaned) and cleaned is not None and cleaned.startswith(("run-1", "run-1"))
    assert "\x1b" not in cleaned and "[31m" not in cleaned and "title" not in cleaned
    with correlation(raw) as cid:
        assert cid == cleaned == current_correlation_id()


def test_nothing_printable_left_is_no_id() -> None:
    assert clean_correlation_id("\n\r\x1b[0m") is None
    assert clean_correlation_id("") is None and clean_correlation_id(42) is None
    assert clean_correlation_id("request-42") == "request-42"


@pytest.mark.parametrize("raw", HOSTILE_IDS)
def test_the_mcp_span_and_log_lines_carry_a_clean_id(telemetry: CapturedTelemetry, raw: str) -> None:
    stream = io.StringIO()
    setup_logging("info", stream=stream, otel=False)
    meter = telemetry.meter_provider.get_meter("t")
    mcp = MCPTelemetry(
        telemetry.tracer_provider.get_tracer("t"), meter.create_histogram("h"), meter.create_counter("c")
    )
    for meta in ({"traceparent": TRACEPARENT, "cde.correlation_id": raw}, {"baggage": f"cde.correlation_id={raw}"}):
        call = mcp.begin("tools/call", {"name": "t", "arguments": {}}, meta=meta)
        get_logger("app").info("inside")
        mcp.end(call)
    spans = telemetry.spans("tools/call")  # "t" is no tool the server registered: the bare method names the span
    assert len(spans) == 2
    assert all(_safe(span.attributes[ATTR_CORRELATION_ID]) for span in spans)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    inside = [line for line in lines if line["event"] == "inside"]
    assert len(inside) == 2 and all(_safe(line["correlation_id"]) for line in inside)
    assert all("\x1b" not in line and "\u001b" not in line for line in stream.getvalue().splitlines())


def test_a_huge_baggage_is_cut_at_a_member_boundary_and_counted() -> None:
    before = dropped_context()
    carrier = bounded_carrier({"traceparent": TRACEPARENT, "baggage": HUGE_BAGGAGE, "other": 1})
    assert set(carrier) == {"traceparent", "baggage"}
    kept = carrier["baggage"]
    assert len(kept.encode()) <= MAX_BAGGAGE_BYTES
    assert kept.startswith("cde.correlation_id=run-1,") and kept.endswith("v" * 90)  # whole members only
    after = dropped_context()
    assert after["headers"] == before["headers"] + 1
    assert after["bytes"] == before["bytes"] + len(HUGE_BAGGAGE) - len(kept)
    assert bounded_carrier({"baggage": "a=1,b=2"}) == {"baggage": "a=1,b=2"}


def test_a_huge_baggage_is_parsed_once_and_no_warning_quotes_it(
    telemetry: CapturedTelemetry, caplog: pytest.LogCaptureFixture
) -> None:
    meter = telemetry.meter_provider.get_meter("t")
    mcp = MCPTelemetry(
        telemetry.tracer_provider.get_tracer("t"), meter.create_histogram("h"), meter.create_counter("c")
    )
    caplog.set_level(logging.DEBUG, logger="opentelemetry")
    for meta in ({"traceparent": TRACEPARENT, "baggage": HUGE_BAGGAGE}, {"baggage": HUGE_BAGGAGE}):
        mcp.end(mcp.begin("tools/call", {"name": "t", "arguments": {}}, meta=meta))
    spans = telemetry.spans("tools/call")
    assert [span.attributes[ATTR_CORRELATION_ID] for span in spans] == ["run-1", "run-1"]
    assert sum(len(record.getMessage()) for record in caplog.records) < 2_000


def test_opentelemetry_warnings_about_a_huge_header_are_cut_while_attached(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A framework that parses ``_meta`` itself (mcp 2.x) hands the whole header to the propagator."""
    caplog.set_level(logging.WARNING, logger="opentelemetry")
    attached = attach_logging(None, load_settings({}))
    try:
        W3CBaggagePropagator().extract({"baggage": HUGE_BAGGAGE})
    finally:
        attached.detach()
    W3CBaggagePropagator().extract({"baggage": "x" * 10_000})  # detached: OpenTelemetry's own message again
    capped, restored = caplog.records
    assert capped.name in PROPAGATION_LOGGERS
    assert len(capped.getMessage()) < 1_000 and "chars cut]" in capped.getMessage()
    assert len(restored.getMessage()) > 10_000
