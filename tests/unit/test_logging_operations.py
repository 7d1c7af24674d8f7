"""Operation logging helpers: start/end events, duration, slow-operation warning with resource usage."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from cde_otel.logging import (
    OPERATIONS_LOGGER,
    OperationStart,
    log_operation_end,
    log_operation_start,
    reset_logging,
    setup_logging,
)
from cde_otel.settings import load_settings


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    reset_logging()


def test_performance_metrics_logged() -> None:
    with capture_logs() as logs:
        started = log_operation_start("start_feature", project_id="p-1")
        log_operation_end("start_feature", 12.3456, "ok", started=started, project_id="p-1", feature_id="f-1")

    assert len(logs) >= 2
    assert logs[0]["operation"] == "start_feature"
    assert logs[0]["event"] == "start_feature started"
    assert logs[0]["project_id"] == "p-1"
    assert "duration_ms" not in logs[0]
    assert logs[-1]["event"] == "start_feature succeeded"
    assert logs[-1]["duration_ms"] == 12.346
    assert (logs[-1]["outcome"], logs[-1]["error_code"], logs[-1]["feature_id"]) == ("ok", None, "f-1")
    assert logs[-1]["log_level"] == "info"
    assert "rss_mb" not in logs[-1]


def test_failed_operation_logs_its_error_code() -> None:
    with capture_logs() as logs:
        log_operation_start("advance_phase", feature_id="f-1")
        log_operation_end("advance_phase", 0.5, "error", error_code="E102", feature_id="f-1")

    end = logs[-1]
    assert end["event"] == "advance_phase failed"
    assert (end["outcome"], end["error_code"], end["log_level"]) == ("error", "E102", "warning")


def test_slow_operation_warns_with_resource_usage() -> None:
    setup_logging("info", stream=io.StringIO(), settings=load_settings({"CDE_OTEL_SLOW_OPERATION_MS": "50"}))
    five_ms_of_cpu_ago = OperationStart(time.perf_counter_ns(), time.process_time_ns() - 5_000_000)
    with capture_logs() as logs:
        log_operation_end("save", 49.0, "ok", started=five_ms_of_cpu_ago)
        log_operation_end("save", 51.0, "ok", started=five_ms_of_cpu_ago)

    fast, slow = logs
    assert fast["log_level"] == "info"
    assert not {"slow", "rss_mb", "cpu_ms"} & set(fast)
    assert slow["log_level"] == "warning"
    assert slow["slow"] is True
    assert slow["cpu_ms"] >= 5.0
    assert slow["rss_mb"] > 1.0


def test_default_threshold_is_one_second() -> None:
    with capture_logs() as logs:
        log_operation_end("save", 999.0, "ok")
        log_operation_end("save", 1001.0, "ok", cpu_ms=3.0, rss_mb=42.0)
    assert [entry["log_level"] for entry in logs] == ["info", "warning"]
    assert (logs[1]["cpu_ms"], logs[1]["rss_mb"]) == (3.0, 42.0)


def test_operation_events_in_json_lines_through_setup() -> None:
    stream = io.StringIO()
    setup_logging("info", stream=stream)
    started = log_operation_start("save", project_id="p-1")
    log_operation_end("save", 3.0, "ok", started=started, project_id="p-1")

    start, end = (json.loads(line) for line in stream.getvalue().splitlines())
    assert start["logger"] == end["logger"] == OPERATIONS_LOGGER
    assert (start["event"], end["event"]) == ("save started", "save succeeded")
    assert end["duration_ms"] == 3.0


def test_events_below_the_level_are_skipped_but_slow_ones_are_not() -> None:
    stream = io.StringIO()
    setup_logging("warning", stream=stream, settings=load_settings({"CDE_OTEL_SLOW_OPERATION_MS": "10"}))
    started = log_operation_start("save")
    log_operation_end("save", 1.0, "ok", started=started)
    log_operation_end("save", 11.0, "ok", started=started)

    (only,) = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (only["event"], only["level"], only["slow"]) == ("save succeeded", "warning", True)
