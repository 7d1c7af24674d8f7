"""Process and host gauges that the alert rules read (memory, disk free at the project)."""

from __future__ import annotations

import os
import shutil
import weakref
from collections.abc import Iterable

import psutil
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from cde_otel.semconv import (
    METRIC_DISK_FREE,
    METRIC_PROCESS_MEMORY_USAGE,
    METRIC_SYSTEM_MEMORY_UTILIZATION,
    SYSTEM_SCOPE_NAME,
)

# Weak, so a provider created after another was freed is never mistaken for it (ids get reused).
_registered: weakref.WeakSet[MeterProvider] = weakref.WeakSet()


def register_system_metrics(meter_provider: MeterProvider, project_path: str | None = None) -> None:
    """Registers the gauges once per MeterProvider."""
    if meter_provider in _registered:
        return
    _registered.add(meter_provider)
    meter = meter_provider.get_meter(SYSTEM_SCOPE_NAME)
    process = psutil.Process()
    path = project_path or os.getcwd()

    def rss(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(process.memory_info().rss)]

    def memory_utilization(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(psutil.virtual_memory().percent / 100.0)]

    def disk_free(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(shutil.disk_usage(path).free)]

    meter.create_observable_gauge(METRIC_PROCESS_MEMORY_USAGE, [rss], unit="By", description="Resident set size.")
    meter.create_observable_gauge(
        METRIC_SYSTEM_MEMORY_UTILIZATION, [memory_utilization], unit="1", description="Share of system memory in use."
    )
    meter.create_observable_gauge(
        METRIC_DISK_FREE, [disk_free], unit="By", description="Free disk space where the project lives."
    )
