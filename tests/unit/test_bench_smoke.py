"""Smoke test of ``bench/run.py``: a quick run produces the documented JSON keys with the right types.

No timing is asserted here (speed goals live in the benchmarks themselves): the test only
proves that every benchmark runs end to end and reports what ``docs/benchmarks.md`` and
issue 9 promise. The pipeline part needs the real Collector (``scripts/install-backends.sh``)
and is marked ``e2e``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

RUN = Path(__file__).resolve().parents[2] / "bench" / "run.py"
NUMBER = (int, float)


def _quick_run(only: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--json", "--only", only],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout)
    assert result["errors"] == {}
    assert result["quick"] is True
    return result


def _assert_goal_entries(result: dict[str, Any], keys: list[str]) -> None:
    for key in keys:
        entry = result["goals"][key]
        assert entry["value"] == result[key]
        assert isinstance(entry["goal"], str)
        assert entry["passed"] in (True, False, None)


def test_in_process_benchmarks_report_their_keys() -> None:
    result = _quick_run("overhead,disabled,quantiles,health")

    machine = result["machine"]
    assert isinstance(machine["nproc"], int)
    assert isinstance(machine["cpu"], str)
    assert isinstance(machine["python"], str)
    assert isinstance(machine["versions"]["opentelemetry-sdk"], str)

    keys = [
        "overhead_ratio_vs_floor",
        "overhead_spans_metrics_ratio_vs_floor",
        "disabled_ratio_vs_bare",
        "disabled_import_ms",
        "health_p99_ms",
        "quantile_max_rel_error",
    ]
    for key in keys:
        assert isinstance(result[key], NUMBER), key
        assert result[key] > 0, key
    _assert_goal_entries(result, keys)
    assert result["goals"]["overhead_spans_metrics_ratio_vs_floor"]["passed"] is None  # context only

    ns = result["overhead"]["ns_per_op"]
    assert set(ns) == {"bare", "instrumented", "floor", "instrumented_no_logs", "floor_no_logs", "upstream_json"}
    assert all(isinstance(value, NUMBER) for value in ns.values())

    disabled = result["disabled"]
    assert disabled["method_is_plain_function"] is True
    assert disabled["heavy_modules_imported"] == []
    assert isinstance(disabled["disabled_ratio_cross_process"], NUMBER)

    assert result["health"]["endpoint"] == "/health/ready"
    assert result["health"]["requests"] > 0

    quantiles = result["quantiles"]
    assert set(quantiles["exponential_view"]) == {"linear", "exponential"}
    assert result["quantile_max_rel_error"] == quantiles["exponential_view"]["linear"]["max_rel_error"]
    assert isinstance(quantiles["classic_view"]["max_rel_error"], NUMBER)


@pytest.mark.e2e
def test_pipeline_benchmarks_report_their_keys() -> None:
    result = _quick_run("pipeline")

    keys = [
        "export_spans_per_s_zero_drop",
        "export_spans_per_s_zero_drop_logs_warning",
        "collector_down_latency_ratio",
        "collector_down_rss_growth_second_half_mb",
    ]
    for key in keys:
        assert isinstance(result[key], NUMBER), key
    _assert_goal_entries(result, keys)

    for config in ("default_logging", "logs_at_warning"):
        steps = result["export"][config]["steps"]
        assert steps, config
        for step in steps:
            assert isinstance(step["passed"], bool)
            assert step["spans_created"] > 0
            assert isinstance(step["collector_accepted"], int)
    down = result["collector_down"]
    assert len(down["pair_ratios"]) >= 1
    assert down["long_down_ops"] > 0
    assert isinstance(down["rss_peak_growth_mb"], NUMBER)


def test_mcp_benchmark_reports_its_keys() -> None:
    result = _quick_run("mcp")

    keys = [
        "mcp_tool_call_ratio",
        "mcp_tool_call_ratio_without_mcp_layer",
        "mcp_tool_call_ratio_logs_warning",
        "mcp_tool_call_ratio_cde_otel_mcp",
    ]
    for key in keys:
        assert isinstance(result[key], NUMBER) and result[key] > 0, key
    _assert_goal_entries(result, keys)
    medians = result["mcp"]["median_round_trip_ms"]
    assert set(medians) == {"off", "on", "on_without_mcp", "on_logs_warning"}
    assert isinstance(result["mcp"]["mcp_layer_owned_us"], NUMBER)
    assert all(isinstance(v, NUMBER) and v > 0 for v in medians.values())
