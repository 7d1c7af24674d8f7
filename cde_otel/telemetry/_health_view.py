"""Health's view of the exporting metric reader: its cumulative state, read on demand."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics.export import AggregationTemporality, MetricReader, MetricsData

from cde_otel._otel_compat import reader_collect, reader_temporalities


class ExportingReaderView(MetricReader):
    """What health reads while metrics are exported: the exporting reader's own cumulative state,
    collected on demand and never exported from here.

    One reader instead of two: the SDK aggregates every histogram record once per reader, so a
    second (in-memory) reader for health made each operation's record cost ~1.6 times as much.
    Used only with cumulative temporality (the default): collecting delta state would take it
    from the exporter. Never registered with a MeterProvider itself.
    """

    def __init__(self, reader: MetricReader) -> None:
        super().__init__()
        self._reader = reader

    def get_metrics_data(self) -> MetricsData | None:
        collect = reader_collect(self._reader)  # set when the reader is registered with the MeterProvider
        return collect(self._reader, timeout_millis=10_000) if collect is not None else None

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        return None

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None


def cumulative(reader: MetricReader) -> bool:
    temporalities = reader_temporalities(reader)
    return bool(temporalities) and all(t is AggregationTemporality.CUMULATIVE for t in temporalities.values())
