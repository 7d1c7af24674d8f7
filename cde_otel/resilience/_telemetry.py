"""The resilience layer's telemetry: span events on the current span and two instruments.

Only the OpenTelemetry API is used: everything is a cheap no-op until providers are
configured. Instruments are created once per meter provider (``None`` = the global one).
Recording never raises into the caller.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Counter, MeterProvider, Observation
from opentelemetry.util.types import AttributeValue

from cde_otel.semconv import (
    ATTR_BREAKER_NAME,
    ATTR_ERROR_CODE,
    ATTR_ERROR_TYPE,
    BREAKER_STATE_VALUES,
    METRIC_CIRCUIT_BREAKER_STATE,
    METRIC_RETRY_ATTEMPTS,
    SCOPE_NAME,
)

_lock = threading.Lock()
# Keyed by id(provider); the provider itself is kept so its id cannot be reused while cached.
_retry_counters: dict[int, tuple[MeterProvider | None, Counter]] = {}
_gauges: dict[int, MeterProvider | None] = {}


def _meter(meter_provider: MeterProvider | None) -> metrics.Meter:
    return metrics.get_meter(SCOPE_NAME, meter_provider=meter_provider)


def add_span_event(name: str, attributes: Mapping[str, AttributeValue]) -> None:
    """Adds ``name`` to the current span, if one is recording."""
    with contextlib.suppress(Exception):
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(name, dict(attributes))


def count_retry(meter_provider: MeterProvider | None, attributes: Mapping[str, AttributeValue]) -> None:
    with contextlib.suppress(Exception):
        key = id(meter_provider)
        with _lock:
            cached = _retry_counters.get(key)
            if cached is None:
                counter = _meter(meter_provider).create_counter(
                    METRIC_RETRY_ATTEMPTS,
                    unit="{attempt}",
                    description="Re-attempts of transiently failing operations.",
                )
                cached = _retry_counters[key] = (meter_provider, counter)
        cached[1].add(1, dict(attributes))


def observe_breakers(meter_provider: MeterProvider | None, states: Callable[[], Iterable[tuple[str, str]]]) -> None:
    """Registers (once per provider) the ``cde.circuit_breaker.state`` gauge over ``states()``."""

    def observe(_options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(BREAKER_STATE_VALUES[state], {ATTR_BREAKER_NAME: name}) for name, state in states()]

    with contextlib.suppress(Exception), _lock:
        if id(meter_provider) in _gauges:
            return
        _meter(meter_provider).create_observable_gauge(
            METRIC_CIRCUIT_BREAKER_STATE,
            callbacks=[observe],
            unit="1",
            description="Circuit breaker state: 0 closed, 1 half_open, 2 open.",
        )
        _gauges[id(meter_provider)] = meter_provider


def error_attributes(exc: BaseException | None) -> dict[str, str]:
    """``error.type`` (the conventions' value: the exception's class name) and, for a coded error,
    our E-code in ``cde.error.code``."""
    if exc is None:
        return {ATTR_ERROR_TYPE: "unknown"}
    attributes = {ATTR_ERROR_TYPE: type(exc).__name__}
    code: Any = getattr(exc, "code", None)
    if isinstance(code, str):
        attributes[ATTR_ERROR_CODE] = code
    return attributes
