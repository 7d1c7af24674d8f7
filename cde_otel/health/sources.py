"""What health reads from the layers around it: registered from above, imported from below.

Health never imports :mod:`cde_otel.telemetry` (the layer above it). Instead
``cde_otel.telemetry.configure()`` registers what health needs of the pipeline it built,
and ``shutdown()`` withdraws it::

    from cde_otel.health.sources import register_telemetry, unregister_telemetry

    register_telemetry(metric_reader=pull_reader, export_status=status.status)
    ...
    unregister_telemetry()

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
class _Telemetry:
    metric_reader: MetricReader | None
    export_status: ExportStatus | None


_NOTHING = _Telemetry(None, None)
_lock = threading.Lock()
_registered = _NOTHING


def register_telemetry(*, metric_reader: MetricReader | None, export_status: ExportStatus | None) -> None:
    """Makes the process's telemetry visible to health (replaces what was registered before)."""
    global _registered
    with _lock:
        _registered = _Telemetry(metric_reader, export_status)


def unregister_telemetry() -> None:
    """Health goes back to "no telemetry": no operation metrics, export ``disabled``."""
    global _registered
    with _lock:
        _registered = _NOTHING


def telemetry_metric_reader() -> MetricReader | None:
    """The registered pull reader, or None while telemetry is not configured."""
    return _registered.metric_reader


def telemetry_export_status() -> str:
    """``"ok"``/``"failing"`` from the registered pipeline; ``"disabled"`` when nothing exports."""
    status = _registered.export_status
    return "disabled" if status is None else status()


def breaker_states() -> Mapping[str, str]:
    """``{name: state}`` of every live circuit breaker (:func:`cde_otel.resilience.breakers`)."""
    # Imported on first use: health's import stays free of tenacity and pybreaker.
    from cde_otel.resilience import breakers

    return breakers()
