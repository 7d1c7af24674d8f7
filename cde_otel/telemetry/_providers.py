"""The application's providers: used, not replaced, when they exist before cde-otel configures.

A provider the application (or ``opentelemetry-instrument`` and its distro) installed as the
global one -- or passed to ``configure()`` -- serves its signal: cde-otel builds no provider and
no exporter for it, so there is no "Overriding of current TracerProvider is not allowed", nothing
exported twice and nothing sent nowhere. Signals the application left unset get cde-otel's own
pipeline as usual (``OTEL_*`` exporters, or the embedded default files).

What a MeterProvider does not take after it was built, and what follows:

* **Views.** The SDK fixes a MeterProvider's views at construction, so the exponential
  aggregation of ``cde.operation.duration`` and ``mcp.server.operation.duration`` (our views)
  cannot be added. Their instruments declare second-scale advisory boundaries instead
  (``CLASSIC_BOUNDARIES_S``: 110 buckets, 10 µs..60 s, about 7 % worst-case quantile error), which
  the application's exporters use by default; for native (exponential) histograms set the
  standard ``OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION=base2_exponential_bucket_histogram``
  or add views of your own.
* **Processors.** Nothing is added to the application's TracerProvider or LoggerProvider (no
  baggage span processor: other instrumentations' spans do not get ``cde.correlation_id``; ours
  carry it anyway).
* **Health.** An SDK MeterProvider does take a reader (``add_metric_reader``): health gets a pull
  reader of its own there, collected only when health asks, which aggregates histograms with our
  aggregation (so percentiles are as precise as with our own providers) and drops every other
  instrument. Its cost is one more aggregation per histogram record. It is removed again by
  ``shutdown()``. A MeterProvider that is not the SDK's takes none: health then reports no
  operation metrics, and ``telemetry_export`` reads ``application`` whenever every signal is
  the application's (whose exporters cde-otel cannot see).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import _logs, metrics, trace
from opentelemetry.sdk.metrics import Histogram
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricReader
from opentelemetry.sdk.metrics.view import DropAggregation
from opentelemetry.sdk.resources import Resource

from cde_otel._otel_compat import cardinality_limit_kwargs
from cde_otel.semconv import SIGNALS
from cde_otel.settings import Settings
from cde_otel.telemetry._histograms import METRIC_CARDINALITY_LIMIT, SDK_INSTRUMENTS, duration_aggregation

#: What ``telemetry_export`` reads when every signal goes through the application's providers.
APPLICATION_EXPORT = "application"
_LAUNCHER = "opentelemetry.instrumentation.auto_instrumentation"


@dataclass(frozen=True)
class AppProviders:
    """The application's provider per signal; None where cde-otel builds its own."""

    tracer: Any = None
    meter: Any = None
    logger: Any = None

    @property
    def resource(self) -> Resource | None:
        """The resource of the application's tracer or logger provider (the SDK's expose it), if any."""
        for provider in (self.tracer, self.logger):
            found = getattr(provider, "resource", None)
            if isinstance(found, Resource):
                return found
        return None

    @property
    def signals(self) -> frozenset[str]:
        given = zip(SIGNALS, (self.tracer, self.meter, self.logger), strict=True)
        return frozenset(signal for signal, provider in given if provider is not None)


def app_providers(
    tracer_provider: Any = None, meter_provider: Any = None, logger_provider: Any = None, *, ours: Any = ()
) -> AppProviders:
    """The providers passed in, else the global ones someone already set (not the ones in ``ours``:
    a provider cde-otel built for an earlier ``configure()`` is not the application's)."""
    current = (trace.get_tracer_provider(), metrics.get_meter_provider(), _logs.get_logger_provider())
    given = (tracer_provider, meter_provider, logger_provider)
    chosen = [
        explicit if explicit is not None else (found if is_set(found) and found not in ours else None)
        for explicit, found in zip(given, current, strict=True)
    ]
    return AppProviders(*chosen)


def is_set(provider: Any) -> bool:
    """Whether a global provider was installed: the API hands out a proxy until then."""
    return not type(provider).__name__.lstrip("_").startswith("Proxy")


def launcher_active() -> bool:
    """Whether ``opentelemetry-instrument`` (its auto-instrumentation) initialises this process: it
    instruments every ``opentelemetry_instrumentor`` entry point itself, ours (``cde``, ``cde_mcp``)
    included, except those ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` names."""
    return _LAUNCHER in sys.modules


def launcher_instruments(name: str) -> bool:
    """Whether ``opentelemetry-instrument`` instruments the entry point ``name`` in this process: it is
    active and the entry point is installed (``threading`` is only with contrib's package)."""
    if not launcher_active():
        return False
    from importlib.metadata import entry_points

    return any(True for _ in entry_points(group="opentelemetry_instrumentor", name=name))


def disabled_instrumentations(environ: Mapping[str, str]) -> set[str]:
    """The entry point names the standard ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` turns off."""
    return {name.strip() for name in environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(",")}


def is_active(instrumentor: Any) -> bool:
    """Instrumented, or being instrumented right now (our instrumentors say so while ``instrument()`` runs)."""
    return bool(instrumentor.is_instrumented_by_opentelemetry or getattr(instrumentor, "is_active", False))


def add_health_reader(meter_provider: Any, settings: Settings) -> MetricReader | None:
    """A pull reader for health on the application's SDK MeterProvider (see the module docs)."""
    add = getattr(meter_provider, "add_metric_reader", None)
    if not callable(add):
        return None
    drop = DropAggregation()
    reader = InMemoryMetricReader(
        preferred_aggregation={
            **dict.fromkeys(SDK_INSTRUMENTS, drop),
            Histogram: duration_aggregation(settings.histogram, settings.histogram_max_size),
        },
        **cardinality_limit_kwargs(InMemoryMetricReader, METRIC_CARDINALITY_LIMIT),
    )
    add(reader)
    return reader


def remove_health_reader(meter_provider: Any, reader: MetricReader) -> None:
    remove = getattr(meter_provider, "remove_metric_reader", None)
    if callable(remove):
        remove(reader)
