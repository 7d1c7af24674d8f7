"""Whether telemetry is actually leaving the process: each exporter's last result, per signal.

The SDK keeps export results inside its processors; these pass-through exporters remember
them so health can report "ok" or "failing" without a second bookkeeping of spans.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


class ExportStatus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ok: dict[str, bool] = {}

    def record(self, signal: str, ok: bool) -> None:
        with self._lock:
            self._ok[signal] = ok

    def status(self) -> str:
        """ "failing" when a signal's last export failed, else "ok" (nothing exported yet counts as ok)."""
        with self._lock:
            return "failing" if not all(self._ok.values()) else "ok"

    def by_signal(self) -> dict[str, bool]:
        with self._lock:
            return dict(self._ok)


class TrackedSpanExporter(SpanExporter):
    def __init__(self, inner: SpanExporter, status: ExportStatus) -> None:
        self._inner, self._status = inner, status

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self._inner.export(spans)
        self._status.record("traces", result is SpanExportResult.SUCCESS)
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)


class TrackedLogExporter(LogRecordExporter):
    def __init__(self, inner: LogRecordExporter, status: ExportStatus) -> None:
        self._inner, self._status = inner, status

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        result = self._inner.export(batch)
        self._status.record("logs", result is LogRecordExportResult.SUCCESS)
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return bool(self._inner.force_flush(timeout_millis))


class TrackedMetricExporter(MetricExporter):
    def __init__(self, inner: MetricExporter, status: ExportStatus) -> None:
        # Keep the wrapped exporter's temporality and aggregation preferences (cumulative by default).
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self._inner, self._status = inner, status

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        result = self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        self._status.record("metrics", result is MetricExportResult.SUCCESS)
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)
