"""Instruments shared by the CDE and MCP instrumentors."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Meter, MeterProvider, Observation
from opentelemetry.trace import Tracer

from cde_otel._measurements import deferred, deferred_measurements
from cde_otel._swallowed import swallowed_counts
from cde_otel._version import __version__
from cde_otel.semconv import (
    ATTR_INSTRUMENTATION_SITE,
    CLASSIC_BOUNDARIES_S,
    METRIC_ERRORS,
    METRIC_INSTRUMENTATION_FAILURES,
    SCHEMA_URL,
    SCOPE_NAME,
)

_failures_lock = threading.Lock()
_failures_registered: weakref.WeakSet[MeterProvider] = weakref.WeakSet()


def _meter(meter_provider: MeterProvider | None, scope: str = SCOPE_NAME) -> Meter:
    return metrics.get_meter(scope, __version__, meter_provider=meter_provider, schema_url=SCHEMA_URL)


def scope_instruments(scope: str, kwargs: Mapping[str, Any]) -> tuple[Tracer, Meter]:
    """The tracer and meter of ``scope`` from the providers an instrumentor was given (else the
    global ones); registers ``cde.instrumentation.failures`` on that MeterProvider."""
    meter_provider = kwargs.get("meter_provider")
    register_failures_counter(meter_provider)
    tracer = trace.get_tracer(scope, __version__, tracer_provider=kwargs.get("tracer_provider"), schema_url=SCHEMA_URL)
    return tracer, _meter(meter_provider, scope)


def duration_histogram(meter: Meter, name: str, description: str, *, meter_provider: MeterProvider | None) -> Histogram:
    """A duration histogram in seconds, with second-scale advisory boundaries for a user's own
    MeterProvider (``configure()``'s views make it exponential). On ``configure()``'s own
    MeterProvider (``meter``'s, None: the global one) its records are aggregated when the metrics
    are collected (:mod:`cde_otel._measurements`), by the callback of ``cde.instrumentation.failures``."""
    register_failures_counter(meter_provider)
    histogram = meter.create_histogram(
        name, unit="s", description=description, explicit_bucket_boundaries_advisory=CLASSIC_BOUNDARIES_S
    )
    return deferred(meter_provider, histogram)


def errors_counter(meter_provider: MeterProvider | None = None) -> Counter:
    """``cde.errors``, always under the ``cde_otel`` scope.

    Failed operations (:class:`~cde_otel.instrumentation.CDEInstrumentor`) and failed MCP requests
    (:class:`~cde_otel.instrumentation.mcp.MCPInstrumentor`) are one metric family, told apart by
    ``cde.operation``: created twice with the same name, unit and description under one scope,
    the SDK hands back the same instrument (one ``cde_errors_total`` in Prometheus, not two
    series differing only by ``otel_scope_name``).
    """
    return _meter(meter_provider).create_counter(
        METRIC_ERRORS, unit="{error}", description="CDE operations and MCP requests that failed, by error type."
    )


def register_failures_counter(meter_provider: MeterProvider | None = None) -> None:
    """``cde.instrumentation.failures``: what the wrappers and hooks swallowed, by site
    (:mod:`cde_otel._swallowed`). Once per MeterProvider, whichever instrumentor comes first: the
    SDK warns when an observable instrument is registered twice.

    Its callback also aggregates the provider's deferred duration records: the SDK calls an
    observable instrument's callbacks in every collection, before it reads the aggregations."""
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    with _failures_lock:
        if provider in _failures_registered:
            return
        _failures_registered.add(provider)
    _meter(provider).create_observable_counter(
        METRIC_INSTRUMENTATION_FAILURES,
        callbacks=[_failures_observer(weakref.ref(provider))],
        unit="{failure}",
        description="Failures cde-otel swallowed inside its own wrappers and hooks (telemetry may be incomplete).",
    )


def _failures_observer(
    provider: weakref.ref[MeterProvider],
) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def observe_failures(options: CallbackOptions) -> Iterable[Observation]:
        owner = provider()
        measurements = None if owner is None else deferred_measurements(owner)
        if measurements is not None:
            measurements.drain()  # swallows its own failures: the failures observed below include them
        return _failures()

    return observe_failures


def _failures() -> list[Observation]:
    return [Observation(count, {ATTR_INSTRUMENTATION_SITE: site}) for site, count in swallowed_counts().items()]
