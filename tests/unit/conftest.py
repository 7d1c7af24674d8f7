"""Fixtures of the unit tests that need more than the suite-wide ones (tests/conftest.py).

* ``otel`` — :class:`~cde_otel.instrumentation.CDEInstrumentor` instrumented into fresh in-memory
  providers (default settings, no operation log events), uninstrumented after the test.

* ``global_telemetry`` — in-memory providers installed once as the process's global tracer
  provider: the mcp SDK 2.x traces through the global provider (its server span, and the client
  span whose context it injects into ``params._meta``), so the tests that look at those spans
  share it. Clear its spans first (``global_telemetry.span_exporter.clear()``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace

from cde_otel.instrumentation import CDEInstrumentor
from cde_otel.settings import load_settings
from cde_otel.testing import CapturedTelemetry, capture_telemetry


@pytest.fixture
def otel() -> Iterator[CapturedTelemetry]:
    telemetry = capture_telemetry()
    CDEInstrumentor().instrument(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        settings=load_settings({}),
        log_operations=False,
    )
    try:
        yield telemetry
    finally:
        CDEInstrumentor().uninstrument()
        telemetry.shutdown()


@pytest.fixture(scope="session")
def global_telemetry() -> Iterator[CapturedTelemetry]:
    captured = capture_telemetry()
    trace.set_tracer_provider(captured.tracer_provider)  # the API allows this once per process
    assert trace.get_tracer_provider() is captured.tracer_provider, "a global tracer provider was set earlier"
    yield captured
    captured.shutdown()
