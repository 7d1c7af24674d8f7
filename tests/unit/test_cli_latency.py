"""``cde-otel latency`` over local metric files: real sessions (rotated), and real SDK histograms.

Counts are checked against the spans of the same calls (read by the suite's own reader), the window
against the rotation boundary, the differencing of cumulative points against the SDK's own
aggregation of the same values, and the quantiles against the exact quantiles of the recorded values.
"""

from __future__ import annotations

import json
import random
import statistics
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.json.file import FileMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ExponentialHistogramDataPoint,
    InMemoryMetricReader,
    PeriodicExportingMetricReader,
)
from typer.testing import CliRunner

from cde_otel.cli import app
from cde_otel.cli._quantiles import subtract
from cde_otel.health._percentiles import merge_exponential
from cde_otel.semconv import (
    ATTR_GEN_AI_TOOL_NAME,
    ATTR_MCP_METHOD_NAME,
    ATTR_OPERATION,
    METRIC_MCP_SERVER_OPERATION_DURATION,
)
from cde_otel.settings import load_settings
from cde_otel.telemetry._histograms import duration_views

SpanReader = Callable[[Path], Iterator[dict[str, Any]]]
SERVER = 2


def _latency(*args: str) -> dict[tuple[str, str], dict[str, Any]]:
    result = CliRunner().invoke(app, ["latency", *args, "--json"])
    assert result.exit_code == 0, result.output
    return {(row["kind"], row["name"]): row for row in json.loads(result.stdout)["rows"]}


def _server_counts(spans: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for span in spans:
        if span["kind"] == SERVER:
            tool = span["attrs"].get(ATTR_GEN_AI_TOOL_NAME)
            counts["tool" if tool else "method", tool or span["attrs"][ATTR_MCP_METHOD_NAME]] += 1
        elif ATTR_OPERATION in span["attrs"]:
            counts["operation", span["attrs"][ATTR_OPERATION]] += 1
    return counts


def test_counts_and_errors_per_tool_method_and_operation_agree_with_the_spans(
    recorded_mcp_sessions: Any, otlp_json_spans: SpanReader
) -> None:
    local = recorded_mcp_sessions.local
    spans = [s for path in local.glob("traces*.jsonl") for s in otlp_json_spans(path)]
    rows = _latency("--dir", str(local))
    assert {key: row["count"] for key, row in rows.items()} == dict(_server_counts(spans))
    submit = rows["tool", "cde_submitWork"]
    assert submit["count"] == recorded_mcp_sessions.calls["cde_submitWork"]
    assert submit["errors"] == 2 and submit["error_rate"] == pytest.approx(2 / submit["count"])
    assert rows["tool", "cde_startFeature"]["errors"] == 0
    for row in rows.values():
        assert 0 < row["p50_s"] <= row["p95_s"] <= row["p99_s"]


def test_since_counts_only_what_happened_in_the_window(
    recorded_mcp_sessions: Any, otlp_json_points: Callable[[Path, str], list[dict[str, Any]]]
) -> None:
    """A window starting between the two sessions: the first one's last export and the second one's start."""
    local = recorded_mcp_sessions.local
    rotated = local / recorded_mcp_sessions.rotated[1]
    assert rotated.name.startswith("metrics.")
    first_ended = max(int(p["timeUnixNano"]) for p in otlp_json_points(rotated, METRIC_MCP_SERVER_OPERATION_DURATION))
    live = otlp_json_points(local / "metrics.jsonl", METRIC_MCP_SERVER_OPERATION_DURATION)
    second_started = min(int(p["startTimeUnixNano"]) for p in live)
    assert first_ended < second_started
    boundary = (first_ended + second_started) / 2e9
    rows = _latency("--dir", str(local), "--since", datetime.fromtimestamp(boundary).isoformat())
    per_session = {tool: count // 2 for tool, count in recorded_mcp_sessions.calls.items()}
    assert rows["tool", "cde_startFeature"]["count"] == per_session["cde_startFeature"]
    assert rows["tool", "cde_submitWork"]["count"] == per_session["cde_submitWork"]  # with its failed call
    assert rows["tool", "cde_submitWork"]["errors"] == 1
    everything = _latency("--dir", str(local), "--since", "1d")
    assert everything == _latency("--dir", str(local))
    assert _latency("--dir", str(local), "--since", "1ns") == {}


def _sdk_points(values: list[float], reader: InMemoryMetricReader) -> ExponentialHistogramDataPoint:
    data = reader.get_metrics_data()
    assert data is not None
    [point] = [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        for p in m.data.data_points
        if isinstance(p, ExponentialHistogramDataPoint)
    ]
    return point


def test_difference_of_cumulative_points_equals_the_sdks_histogram_of_the_later_values() -> None:
    rng = random.Random(5)
    first = [rng.lognormvariate(-6, 1) for _ in range(500)]
    later = [rng.lognormvariate(-4, 0.5) for _ in range(700)]
    views = duration_views("exponential", 750)

    cumulative = InMemoryMetricReader()
    histogram = MeterProvider([cumulative], views=views).get_meter("t").create_histogram(METRIC_OPERATION_NAME)
    for value in first:
        histogram.record(value)
    baseline = _sdk_points(first, cumulative)
    for value in later:
        histogram.record(value)
    last = _sdk_points(later, cumulative)

    alone_reader = InMemoryMetricReader()
    alone = MeterProvider([alone_reader], views=views).get_meter("t").create_histogram(METRIC_OPERATION_NAME)
    for value in later:
        alone.record(value)
    expected = merge_exponential([_sdk_points(later, alone_reader)])

    difference = subtract(last, baseline)
    assert isinstance(difference, ExponentialHistogramDataPoint)
    assert difference.count == len(later) and difference.sum == pytest.approx(sum(later))
    got = merge_exponential([difference])
    assert got is not None and expected is not None
    scale = min(got.scale, expected.scale)
    assert got.downscaled(scale).positive == expected.downscaled(scale).positive


METRIC_OPERATION_NAME = METRIC_MCP_SERVER_OPERATION_DURATION


def _write_histogram_file(directory: Path, kind: str, values: list[float], flushes: int) -> None:
    """The values recorded by the SDK with our views and written by the OTLP-JSON file exporter,
    in ``flushes`` cumulative exports (as a server's periodic reader does)."""
    directory.mkdir()
    reader = PeriodicExportingMetricReader(FileMetricExporter(directory / "metrics.jsonl"), export_interval_millis=1e9)
    provider = MeterProvider([reader], views=duration_views(kind, load_settings().histogram_max_size))
    histogram = provider.get_meter("t").create_histogram(METRIC_MCP_SERVER_OPERATION_DURATION, unit="s")
    attributes = {ATTR_MCP_METHOD_NAME: "tools/call", ATTR_GEN_AI_TOOL_NAME: "cde_submitWork"}
    step = len(values) // flushes + 1
    for start in range(0, len(values), step):
        for value in values[start : start + step]:
            histogram.record(value, attributes)
        provider.force_flush()
    provider.shutdown()


@pytest.mark.parametrize(("kind", "tolerance"), [("exponential", 0.02), ("classic", 0.08)])
def test_quantiles_from_the_files_are_close_to_the_exact_ones(tmp_path: Path, kind: str, tolerance: float) -> None:
    rng = random.Random(11)
    values = [rng.lognormvariate(-5, 0.8) for _ in range(3000)]
    _write_histogram_file(tmp_path / "local", kind, values, flushes=4)
    row = _latency("--dir", str(tmp_path / "local"))["tool", "cde_submitWork"]
    assert row["count"] == len(values)
    exact = statistics.quantiles(values, n=100, method="inclusive")
    for name, percentile in (("p50_s", 50), ("p95_s", 95), ("p99_s", 99)):
        truth = exact[percentile - 1]
        assert abs(row[name] - truth) / truth <= tolerance, (kind, name, row[name], truth)
