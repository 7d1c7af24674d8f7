"""TransientRetry: transient errors are retried with growing, bounded, jittered waits, and observed."""

from __future__ import annotations

import errno

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cde_otel.errors import StateError, ValidationError
from cde_otel.resilience import TransientRetry, is_transient
from cde_otel.semconv import (
    ATTR_ERROR_CODE,
    ATTR_ERROR_TYPE,
    ATTR_OPERATION,
    ATTR_RETRY_ATTEMPT,
    ATTR_RETRY_ERRNO,
    EVENT_RETRY,
    EVENT_RETRY_EXHAUSTED,
    METRIC_RETRY_ATTEMPTS,
)
from cde_otel.testing import metric_points


def transient(name: str = "EAGAIN") -> StateError:
    return StateError("write failed", "E201", {"errno": name})


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (transient("EAGAIN"), True),
        (transient("EBUSY"), True),
        (transient("EINTR"), True),
        (transient("ETIMEDOUT"), True),
        (StateError("lock", "E206"), True),
        (OSError(errno.EBUSY, "busy"), True),
        (transient("EIO"), False),
        (StateError("full", "E210", {"errno": "ENOSPC"}), False),
        (StateError("conflict", "E202"), False),
        (ValidationError("bad", "E305"), False),
        (OSError(errno.ENOSPC, "full"), False),
        (RuntimeError("x"), False),
    ],
)
def test_transient_classification(error: BaseException, expected: bool) -> None:
    assert is_transient(error) is expected


def test_retries_until_success_with_bounded_exponential_waits() -> None:
    waits: list[float] = []
    attempts: list[int] = []

    def operation() -> str:
        attempts.append(1)
        if len(attempts) < 5:
            raise transient("EBUSY")
        return "saved"

    retry = TransientRetry(attempts=5, max_wait_s=0.3, initial_wait_s=0.05, sleep=waits.append)
    assert retry(operation) == "saved"
    assert len(attempts) == 5
    assert len(waits) == 4
    for n, wait in enumerate(waits):
        base = 0.05 * 2**n
        assert min(base, 0.3) <= wait <= min(base + 0.05, 0.3) + 1e-9
    assert waits[-1] == pytest.approx(0.3)  # capped


def test_gives_up_after_attempts_with_the_original_error() -> None:
    waits: list[float] = []
    retry = TransientRetry(attempts=3, max_wait_s=1, sleep=waits.append)
    calls = []

    def operation() -> None:
        calls.append(1)
        raise StateError("lock", "E206")

    with pytest.raises(StateError) as caught:
        retry(operation)
    assert caught.value.code == "E206"
    assert len(calls) == 3
    assert len(waits) == 2


def test_non_transient_errors_fail_at_once() -> None:
    waits: list[float] = []
    calls = []

    def operation() -> None:
        calls.append(1)
        raise StateError("full", "E210", {"errno": "ENOSPC"})

    with pytest.raises(StateError):
        TransientRetry(attempts=5, sleep=waits.append)(operation)
    assert calls == [1]
    assert waits == []


def test_each_retry_is_a_span_event_and_counted() -> None:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    retry = TransientRetry(attempts=3, sleep=lambda _s: None, meter_provider=meter_provider, operation="op.save")
    outcomes = iter([transient("EAGAIN"), StateError("lock", "E206"), None])

    def operation() -> str:
        error = next(outcomes)
        if error is not None:
            raise error
        return "ok"

    with tracer_provider.get_tracer("t").start_as_current_span("op.save"):
        assert retry(operation) == "ok"
    (span,) = exporter.get_finished_spans()
    retries = [dict(e.attributes or {}) for e in span.events if e.name == EVENT_RETRY]
    assert [r[ATTR_RETRY_ATTEMPT] for r in retries] == [1, 2]
    assert [(r[ATTR_ERROR_TYPE], r[ATTR_ERROR_CODE]) for r in retries] == [
        ("StateError", "E201"),
        ("StateError", "E206"),
    ]
    assert retries[0][ATTR_RETRY_ERRNO] == "EAGAIN"
    assert all(r[ATTR_OPERATION] == "op.save" for r in retries)
    points = {
        tuple(sorted((p.attributes or {}).items())): getattr(p, "value", None)
        for p in metric_points(reader, METRIC_RETRY_ATTEMPTS)
    }
    assert points == {
        ((ATTR_ERROR_CODE, "E201"), (ATTR_OPERATION, "op.save"), (ATTR_ERROR_TYPE, "StateError")): 1,
        ((ATTR_ERROR_CODE, "E206"), (ATTR_OPERATION, "op.save"), (ATTR_ERROR_TYPE, "StateError")): 1,
    }


def test_exhaustion_is_a_span_event() -> None:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))

    def operation() -> None:
        raise transient()

    with tracer_provider.get_tracer("t").start_as_current_span("s"), pytest.raises(StateError):
        TransientRetry(attempts=2, sleep=lambda _s: None)(operation)
    (span,) = exporter.get_finished_spans()
    assert [e.name for e in span.events] == [EVENT_RETRY, EVENT_RETRY_EXHAUSTED]
    exhausted = dict(span.events[-1].attributes or {})
    assert (exhausted[ATTR_ERROR_TYPE], exhausted[ATTR_ERROR_CODE]) == ("StateError", "E201")
