"""CircuitBreaker: opens after consecutive dependency failures, cools down, recovers, reports state."""

from __future__ import annotations

import contextlib
import threading

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cde_otel.errors import CircuitBreakerOpenError, FeatureError, StateError, ValidationError
from cde_otel.resilience import CircuitBreaker, breakers
from cde_otel.semconv import (
    ATTR_BREAKER_NAME,
    ATTR_BREAKER_PREVIOUS_STATE,
    ATTR_BREAKER_STATE,
    EVENT_BREAKER_REJECTED,
    EVENT_BREAKER_STATE_CHANGE,
    METRIC_CIRCUIT_BREAKER_STATE,
)
from cde_otel.testing import ManualClock, metric_points


def failing_operation() -> None:
    raise OSError(5, "Input/output error")


def test_circuit_breaker_opens_after_failures() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=5, timeout=60, name="seed", clock=clock)
    for _ in range(5):
        with contextlib.suppress(OSError):
            breaker.call(failing_operation)
    assert breaker.state == "open"
    clock.advance(12.5)
    with pytest.raises(CircuitBreakerOpenError) as caught:
        breaker.call(failing_operation)  # blocked by the circuit breaker
    error = caught.value
    assert error.code == "E901"
    assert error.context["name"] == "seed"
    assert error.context["remaining_s"] == 47.5  # 60 s of cool-down, 12.5 s of it gone


def test_open_breaker_does_not_call_and_recovers_after_cooldown() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=2, timeout=30, name="cooldown", clock=clock)
    calls: list[str] = []

    def flaky() -> str:
        calls.append("called")
        if len(calls) <= 2:
            raise OSError(16, "busy")
        return "ok"

    for _ in range(2):
        with pytest.raises(OSError):
            breaker.call(flaky)
    assert breaker.state == "open"
    clock.now += 29.9
    with pytest.raises(CircuitBreakerOpenError) as caught:
        breaker.call(flaky)
    assert caught.value.context["remaining_s"] == pytest.approx(0.1, abs=1e-6)
    assert len(calls) == 2, "an open breaker never reaches the dependency"
    clock.now += 0.1
    assert breaker.state == "half_open"
    assert breaker.call(flaky) == "ok"  # the trial call succeeds
    assert breaker.state == "closed"
    assert breaker.failure_count == 0
    assert breaker.transitions == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_failed_trial_reopens_for_a_new_cooldown() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=1, timeout=10, name="trial", clock=clock)
    with pytest.raises(OSError):
        breaker.call(failing_operation)
    clock.now += 10
    with pytest.raises(OSError):
        breaker.call(failing_operation)  # trial fails: the original error, and open again
    assert breaker.state == "open"
    assert breaker.remaining_cooldown() == pytest.approx(10)


@pytest.mark.parametrize(
    "error",
    [
        ValidationError("bad", "E305"),
        StateError("conflict", "E202"),
        FeatureError("not active", "E101"),
        KeyboardInterrupt(),
    ],
)
def test_domain_errors_do_not_count(error: BaseException) -> None:
    breaker = CircuitBreaker(failure_threshold=2, timeout=10, name="domain")

    def raises() -> None:
        raise error

    for _ in range(5):
        with pytest.raises(type(error)):
            breaker.call(raises)
    assert breaker.state == "closed"
    assert breaker.failure_count == 0


@pytest.mark.parametrize("code", ["E201", "E206", "E210"])
def test_storage_errors_count(code: str) -> None:
    breaker = CircuitBreaker(failure_threshold=2, timeout=10, name="storage")

    def raises() -> None:
        raise StateError("disk trouble", code)

    for _ in range(2):
        with pytest.raises(StateError):
            breaker.call(raises)
    assert breaker.state == "open"


def test_success_resets_consecutive_count() -> None:
    breaker = CircuitBreaker(failure_threshold=3, timeout=10, name="reset")
    for _ in range(2):
        with pytest.raises(OSError):
            breaker.call(failing_operation)
    assert breaker.call(lambda: 7) == 7
    for _ in range(2):
        with pytest.raises(OSError):
            breaker.call(failing_operation)
    assert breaker.state == "closed"


def test_thread_safe_counting() -> None:
    breaker = CircuitBreaker(failure_threshold=1000, timeout=10, name="threads")
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for _ in range(100):
            with pytest.raises(OSError):
                breaker.call(failing_operation)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert breaker.failure_count == 800
    assert breaker.state == "closed"


def test_registry_and_telemetry() -> None:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    clock = ManualClock()
    breaker = CircuitBreaker(1, 5, name="observed", clock=clock, meter_provider=meter_provider)
    assert breakers()["observed"] == "closed"

    def gauge_values() -> dict[str, int]:
        return {
            str((point.attributes or {})[ATTR_BREAKER_NAME]): int(getattr(point, "value", -1))
            for point in metric_points(reader, METRIC_CIRCUIT_BREAKER_STATE)
        }

    assert gauge_values()["observed"] == 0
    with tracer_provider.get_tracer("test").start_as_current_span("FileSystemProjectRepository.save"):
        with pytest.raises(OSError):
            breaker.call(failing_operation)
        with pytest.raises(CircuitBreakerOpenError):
            breaker.call(failing_operation)
    assert breakers()["observed"] == "open"
    assert gauge_values()["observed"] == 2
    clock.now += 5
    assert gauge_values()["observed"] == 1
    (span,) = exporter.get_finished_spans()
    events = [(e.name, dict(e.attributes or {})) for e in span.events]
    assert (
        EVENT_BREAKER_STATE_CHANGE,
        {ATTR_BREAKER_NAME: "observed", ATTR_BREAKER_PREVIOUS_STATE: "closed", ATTR_BREAKER_STATE: "open"},
    ) in events
    assert (EVENT_BREAKER_REJECTED, {ATTR_BREAKER_NAME: "observed"}) in events
    del breaker
    import gc

    gc.collect()
    assert "observed" not in breakers()
