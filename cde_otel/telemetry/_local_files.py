"""The embedded default's files: OTLP/JSON lines per signal, size-capped and rotated.

Layout (what ``cde-otel traces``/``latency``/``export`` read), in the local directory, for each
signal ``S`` in ``traces``, ``metrics``, ``logs``:

* ``S.jsonl`` is the file being written; ``S.<UTC time>-<pid>.jsonl`` are rotated files, closed
  and never written again. Read ``S.jsonl`` and every ``S.*.jsonl``, oldest first by modification
  time (then name).
* Every line is one complete ``Export*ServiceRequest`` in the OTLP JSON mapping (a Collector's
  ``otlpjsonfile`` receiver reads them), except possibly a truncated last line of ``S.jsonl``.

Bounded: each signal keeps at most a third of ``CDE_OTEL_LOCAL_MAX_MB`` (default 100 MB in all);
``S.jsonl`` rolls over at a quarter of that, and the oldest rotated files are deleted first.
Several processes of one service may share the directory: every write (and rotation) holds
``.S.lock`` (``flock``), and a line is written by one ``write`` of the whole line, so
lines never interleave.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics import Counter, Histogram, ObservableCounter
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.metrics.view import (
    Aggregation,
    ExplicitBucketHistogramAggregation,
    ExponentialBucketHistogramAggregation,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from cde_otel.semconv import SIGNALS
from cde_otel.telemetry import _otlp_json as otlp_json
from cde_otel.telemetry._encoded import slim_span
from cde_otel.telemetry._histograms import SDK_INSTRUMENTS
from cde_otel.telemetry._otlp_json_metrics import encode_metrics
from cde_otel.telemetry._rotating_lines import RotatingLines, rotated_files

_log = logging.getLogger("cde_otel.telemetry")
__all__ = [
    "DEFAULT_MAX_MB",
    "SIGNALS",
    "LocalLogExporter",
    "LocalMetricExporter",
    "LocalSpanExporter",
    "RotatingLines",
    "local_exporter",
    "metric_preferences",
    "rotated_files",
]
#: The embedded default's total size when ``CDE_OTEL_LOCAL_MAX_MB`` is not set.
DEFAULT_MAX_MB = 100.0


class _LocalExporter:
    """Encodes a batch as one request and appends it as one line."""

    def __init__(self, files: RotatingLines) -> None:
        self.files = files
        self._envelope = otlp_json.new_envelope()

    def _export(self, encode: Callable[[Any, Any], otlp_json.JSON], batch: Any) -> bool:
        try:
            line = otlp_json.dumps_line(encode(self._envelope, batch))
        except Exception:
            _log.debug("cde-otel: encoding a %s batch failed", self.files.signal, exc_info=True)
            return False
        return self.files.write(line)


class LocalSpanExporter(_LocalExporter, SpanExporter):
    queue_form = staticmethod(slim_span)  # see ._encoded

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        ok = self._export(otlp_json.encode_spans, spans)
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.files.close()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class LocalLogExporter(_LocalExporter, LogRecordExporter):
    queue_form = staticmethod(otlp_json.encoded_log)  # see ._encoded

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        if not batch:
            return LogRecordExportResult.SUCCESS
        ok = self._export(otlp_json.encode_logs, batch)
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE

    def shutdown(self) -> None:
        self.files.close()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class LocalMetricExporter(_LocalExporter, MetricExporter):
    def __init__(self, files: RotatingLines) -> None:
        _LocalExporter.__init__(self, files)
        temporality, aggregation = metric_preferences()
        MetricExporter.__init__(self, preferred_temporality=temporality, preferred_aggregation=aggregation)

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        if not metrics_data.resource_metrics:
            return MetricExportResult.SUCCESS
        ok = self._export(encode_metrics, metrics_data)
        return MetricExportResult.SUCCESS if ok else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.files.close()


# Per the OTLP exporter specification: DELTA and LOWMEMORY keep up-down counters and gauges cumulative.
_DELTA = {
    "DELTA": (Counter, Histogram, ObservableCounter),
    "LOWMEMORY": (Counter, Histogram),
    "CUMULATIVE": (),
}


def metric_preferences(
    environ: dict[str, str] | os._Environ[str] | None = None,
) -> tuple[dict[type, AggregationTemporality], dict[type, Aggregation]]:
    """The temporality and default histogram aggregation the standard OTLP metric variables ask for."""
    env = os.environ if environ is None else environ
    preference = env.get("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "CUMULATIVE").strip().upper()
    delta = _DELTA.get(preference, ())
    temporality: dict[type, AggregationTemporality] = {
        kind: AggregationTemporality.DELTA if kind in delta else AggregationTemporality.CUMULATIVE
        for kind in SDK_INSTRUMENTS
    }
    histogram = env.get("OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION", "").strip().lower()
    aggregation: Aggregation = (
        ExponentialBucketHistogramAggregation()
        if histogram == "base2_exponential_bucket_histogram"
        else ExplicitBucketHistogramAggregation()
    )
    return temporality, {Histogram: aggregation}


def local_exporter(signal: str, directory: Path, max_mb: float = DEFAULT_MAX_MB) -> Any:
    """The exporter writing ``signal`` into ``directory`` with a third of ``max_mb``."""
    directory.mkdir(parents=True, exist_ok=True)
    files = RotatingLines(directory, signal, int(max_mb * 1024 * 1024 / len(SIGNALS)))
    if signal == "traces":
        return LocalSpanExporter(files)
    if signal == "metrics":
        return LocalMetricExporter(files)
    return LocalLogExporter(files)
