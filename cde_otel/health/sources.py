"""What health reads from the layers around it: registered from above, imported from below.

Health never imports :mod:`cde_otel.telemetry` (the layer above it). Instead
``cde_otel.telemetry.configure()`` registers what health needs of the pipeline it built; the
runtime holds the :class:`TelemetrySource` it got back, and ``shutdown()`` withdraws exactly
that one (a later registration stays)::

    from cde_otel.health.sources import register_telemetry, unregister_telemetry

    source = register_telemetry(metric_reader=pull_reader, export_status=status.status)
    ...
    unregister_telemetry(source)

* ``metric_reader`` — a pull reader on the configured MeterProvider; health computes
  percentiles and rates from the same ``cde.operation.duration`` histogram the exporters
  ship, never from a second bookkeeping.
* ``export_status`` — ``"ok"`` or ``"failing"``: whether the last export of each signal worked.

Circuit-breaker states come from :func:`cde_otel.resilience.breakers`, a layer below
health, read directly. Embedders with their own providers may register their own reader.
Cheap to import: health's monitor and server are not loaded by it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricReader

ExportStatus = Callable[[], str]


@dataclass(frozen=True, slots=True)
class TelemetrySource:
    """What one telemetry pipeline offers health."""

    metric_reader: MetricReader | None
    export_status: ExportStatus | None


_NOTHING = TelemetrySource(None, None)


class TelemetrySlot:
    """Where health finds the process's telemetry: the source registered last, until it is withdrawn.

    One per process (:data:`TELEMETRY`): monitors are made by the MCP tool, the CLI or an embedder,
    none of which has the runtime at hand, and health may not ask the layer above for it; so the
    runtime puts its source here, and takes it back. The slot holds a reference only.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current = _NOTHING

    def register(self, source: TelemetrySource) -> TelemetrySource:
        with self._lock:
            self.current = source
        return source

    def withdraw(self, source: TelemetrySource | None = None) -> None:
        """Back to "no telemetry", if ``source`` (default: whatever is registered) is the current one."""
        with self._lock:
            if source is None or self.current is source:
                self.current = _NOTHING


TELEMETRY = TelemetrySlot()


def register_telemetry(*, metric_reader: MetricReader | None, export_status: ExportStatus | None) -> TelemetrySource:
    """Makes the process's telemetry visible to health (replaces what was registered before)."""
    return TELEMETRY.register(TelemetrySource(metric_reader, export_status))


def unregister_telemetry(source: TelemetrySource | None = None) -> None:
    """Health goes back to "no telemetry" (no operation metrics, export ``disabled``) -- unless
    ``source`` is given and another one was registered since."""
    TELEMETRY.withdraw(source)


def telemetry_metric_reader() -> MetricReader | None:
    """The registered pull reader, or None while telemetry is not configured."""
    return TELEMETRY.current.metric_reader


def telemetry_export_status() -> str:
    """``"ok"``/``"failing"`` from the registered pipeline; ``"disabled"`` when nothing exports."""
    status = TELEMETRY.current.export_status
    return "disabled" if status is None else status()


def breaker_states() -> Mapping[str, str]:
    """``{name: state}`` of every live circuit breaker (:func:`cde_otel.resilience.breakers`)."""
    # Imported on first use: health's import stays free of tenacity and pybreaker.
    from cde_otel.resilience import breakers

    return breakers()
