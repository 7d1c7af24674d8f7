"""The real pipeline: an env-var-only program → OTLP → Collector → Jaeger + Prometheus (+ logs file).

Everything is polled with deadlines; a missing backend is an error, never a skip.
"""

from __future__ import annotations

import json
import math
import os
import queue
import random
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from backends import Backends, poll_until
from cli_demo import run_demo
from quantile_oracle import exact_quantile

from cde_otel.semconv import ATTR_CORRELATION_ID, ATTR_FEATURE_ID

DRIVERS = Path(__file__).resolve().parent / "drivers"
DEADLINE_S = 60.0


def _driver_env(backends: Backends, service: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CDE_OTEL_"))}
    env.update(
        CDE_OTEL_ENABLED="true",
        CDE_OTEL_TARGETS="controlled:ControlledOperation.run",
        OTEL_SERVICE_NAME=service,
        OTEL_EXPORTER_OTLP_ENDPOINT=backends.otlp_http_endpoint,
        OTEL_METRIC_EXPORT_INTERVAL="1000",
        OTEL_BSP_SCHEDULE_DELAY="200",
        OTEL_BLRP_SCHEDULE_DELAY="200",
        PYTHONPATH=str(DRIVERS),
    )
    return env


class DemoRun:
    def __init__(self, service: str, output: dict[str, Any], durations: list[float]) -> None:
        self.service = service
        self.output = output
        self.durations = durations


@pytest.fixture(scope="module")
def demo_run(backends: Backends, tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    work = tmp_path_factory.mktemp("demo-run")
    rng = random.Random(20261128)
    # Log-uniform from 1 ms to 2 s: the controlled operation's exact durations.
    durations = [math.exp(rng.uniform(math.log(1e-3), math.log(2.0))) for _ in range(2000)]
    durations_file = work / "durations.json"
    durations_file.write_text(json.dumps(durations))
    (work / "project").mkdir()
    service = f"cde-e2e-{uuid.uuid4().hex[:8]}"
    done = subprocess.run(
        [
            sys.executable,
            str(DRIVERS / "workload_driver.py"),
            "demo",
            str(work / "project"),
            str(work / "durations.json"),
        ],
        env=_driver_env(backends, service),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return DemoRun(service, json.loads(done.stdout.strip().splitlines()[-1]), durations)


def _traces(backends: Backends, service: str, **params: Any) -> list[dict[str, Any]]:
    return list(backends.jaeger_get("/api/traces", service=service, limit=20_000, **params).get("data") or [])


def _span_tags(span: dict[str, Any]) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in span.get("tags", [])}


def test_jaeger_has_nested_project_feature_and_state_spans(backends: Backends, demo_run: DemoRun) -> None:
    def listed() -> list[str] | None:
        services = backends.jaeger_get("/api/services")["data"] or []
        return services if demo_run.service in services else None

    services = poll_until(listed, timeout=DEADLINE_S, what="the service in Jaeger")
    assert demo_run.service in services

    def nested_saves(traces: list[dict[str, Any]]) -> int:
        count = 0
        for trace in traces:
            by_id = {s["spanID"]: s for s in trace["spans"]}
            for span in trace["spans"]:
                parents = [r["spanID"] for r in span.get("references", []) if r["refType"] == "CHILD_OF"]
                if parents and parents[0] in by_id:
                    pair = (by_id[parents[0]]["operationName"], span["operationName"])
                    count += pair == ("FileSystemProjectRepository.get_or_create", "FileSystemProjectRepository.save")
        return count

    def enough() -> list[dict[str, Any]] | None:
        # The collector's exporter sends batches concurrently, so wait for the whole picture.
        traces = _traces(backends, demo_run.service)
        names = {s["operationName"] for t in traces for s in t["spans"]}
        wanted = {"Project.start_feature", "Feature.advance_phase", "Feature.complete"}
        wanted.add("FileSystemProjectRepository.save")
        return traces if wanted <= names and nested_saves(traces) >= 1 else None

    traces = poll_until(enough, timeout=DEADLINE_S, what="project, feature and state spans, nested, in Jaeger")
    for trace in traces:
        correlation_ids = {_span_tags(s).get(ATTR_CORRELATION_ID) for s in trace["spans"]}
        assert len(correlation_ids) == 1 and None not in correlation_ids, trace["traceID"]


def test_one_tag_finds_a_features_whole_workflow(backends: Backends, demo_run: DemoRun) -> None:
    feature_id = demo_run.output["completed"][0]
    tags = json.dumps({ATTR_FEATURE_ID: feature_id})

    def workflow() -> list[str] | None:
        names = sorted(
            s["operationName"]
            for t in _traces(backends, demo_run.service, tags=tags)
            for s in t["spans"]
            if _span_tags(s).get(ATTR_FEATURE_ID) == feature_id
        )
        return names if "Feature.complete" in names and names.count("Feature.advance_phase") >= 5 else None

    names = poll_until(workflow, timeout=DEADLINE_S, what=f"feature {feature_id}'s workflow by tag")
    assert "Project.start_feature" in names
    assert names.count("FileSystemProjectRepository.save") >= 6  # progress saved at every phase


def test_prometheus_percentiles_match_exact_values(backends: Backends, demo_run: DemoRun) -> None:
    selector = (
        f'cde_operation_duration_seconds{{cde_operation="ControlledOperation.run",service_name="{demo_run.service}"}}'
    )

    def count() -> float | None:
        result = backends.prom_query(f"histogram_count(sum({selector}))")
        value = float(result[0]["value"][1]) if result else 0.0
        return value if value >= len(demo_run.durations) else None

    poll_until(count, timeout=DEADLINE_S, what="all controlled observations in Prometheus")
    for q in (0.5, 0.95, 0.99):
        [sample] = backends.prom_query(f"histogram_quantile({q}, sum({selector}))")
        estimated = float(sample["value"][1])
        exact = exact_quantile(demo_run.durations, q)
        assert abs(estimated - exact) / exact <= 0.02, (q, estimated, exact)


def test_error_counts_by_code_are_queryable(backends: Backends, demo_run: DemoRun) -> None:
    def errors() -> dict[str, float] | None:
        selector = f'cde_errors_total{{service_name="{demo_run.service}"}}'
        rows = backends.prom_query(f"sum by (cde_error_code, error_type) ({selector})")
        # Our code is cde.error.code; error.type is the conventions' value: the exception's class.
        assert all(r["metric"].get("error_type") for r in rows), rows
        assert not [r for r in rows if r["metric"].get("error_type", "").startswith("E")], rows
        found = {r["metric"]["cde_error_code"]: float(r["value"][1]) for r in rows if "cde_error_code" in r["metric"]}
        complete = all(found.get(code, 0) >= times for code, times in demo_run.output["refused"].items())
        return found if complete else None

    found = poll_until(errors, timeout=DEADLINE_S, what="cde_errors_total by code, at the final counts")
    assert set(demo_run.output["refused"]) <= set(found)


def test_collector_received_logs_that_point_at_jaeger_spans(backends: Backends, demo_run: DemoRun) -> None:
    def log_records() -> list[dict[str, Any]] | None:
        records = [
            record
            for request in backends.collector_log_requests()
            for resource_logs in request.get("resourceLogs", [])
            if any(
                a["key"] == "service.name" and a["value"].get("stringValue") == demo_run.service
                for a in resource_logs["resource"].get("attributes", [])
            )
            for scope in resource_logs.get("scopeLogs", [])
            for record in scope.get("logRecords", [])
            if record.get("traceId") and record.get("spanId")
        ]
        return records or None

    def both_kinds_seen(records: list[dict[str, Any]]) -> bool:
        bodies = json.dumps(records)
        # An ok operation's record is its span; failed and slow ones are also log records, in their span:
        # the workload's E101 refusals, and the controlled durations over 1 s.
        return "Project.start_feature failed" in bodies and (
            "ControlledOperation.run succeeded" in bodies and '"slow"' in bodies
        )

    def matched_records() -> list[dict[str, Any]] | None:
        records = log_records() or []
        spans = {(t["traceID"], s["spanID"]) for t in _traces(backends, demo_run.service) for s in t["spans"]}
        matched = [r for r in records if (r["traceId"], r["spanId"]) in spans]
        # The Collector's file exporter may hold the later batches a while: wait for both kinds of record.
        return matched if both_kinds_seen(records) and len(matched) == len(records) else None

    matched = poll_until(matched_records, timeout=DEADLINE_S, what="failed and slow log records matching Jaeger spans")
    # Every log record written inside an operation points at a span Jaeger has.
    assert {(r["traceId"], r["spanId"]) for r in matched} and both_kinds_seen(matched)


class Driver:
    """A driver process whose JSON progress lines are read by a thread, so waits keep their deadlines."""

    def __init__(self, args: list[str], env: dict[str, str], stderr_path: Path) -> None:
        self.stderr_path = stderr_path
        self._stderr = stderr_path.open("w")
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.progress: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def seen(self, phase: str, count: int) -> list[dict[str, Any]] | None:
        while True:
            try:
                self.progress.append(self.lines.get_nowait())
            except queue.Empty:
                break
        if self.proc.poll() is not None:
            raise AssertionError(f"driver exited with {self.proc.returncode}: {self.stderr_path.read_text()[-3000:]}")
        found = [p for p in self.progress if p["phase"] == phase]
        return found if len(found) >= count else None

    def close(self) -> None:
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()


@pytest.fixture
def outage_driver(backends: Backends, tmp_path: Path) -> Iterator[tuple[Driver, Path, str]]:
    control = tmp_path / "control"
    control.write_text("up1")
    (tmp_path / "project").mkdir()
    service = f"cde-outage-{uuid.uuid4().hex[:8]}"
    driver = Driver(
        [sys.executable, str(DRIVERS / "workload_driver.py"), "loop", str(tmp_path / "project"), str(control)],
        _driver_env(backends, service),
        tmp_path / "driver.stderr",
    )
    try:
        yield driver, control, service
    finally:
        control.write_text("stop")
        if not backends.collector_running():
            backends.start_collector()
        driver.close()


def test_collector_outage_keeps_the_app_running_and_recovers(
    backends: Backends, outage_driver: tuple[Driver, Path, str]
) -> None:
    driver, control, service = outage_driver
    poll_until(lambda: driver.seen("up1", 20), timeout=DEADLINE_S, interval=0.05, what="iterations before the outage")
    backends.stop_collector()
    control.write_text("down")
    down = poll_until(lambda: driver.seen("down", 150), timeout=120, interval=0.05, what="iterations during outage")
    rss_growth_mib = (down[-1]["rss"] - down[0]["rss"]) / 2**20
    assert rss_growth_mib < 40, f"memory grew {rss_growth_mib:.1f} MiB while the collector was down"
    backends.start_collector()
    control.write_text("up2")
    poll_until(lambda: driver.seen("up2", 5), timeout=DEADLINE_S, interval=0.05, what="iterations after the restart")

    def after_restart() -> list[dict[str, Any]] | None:
        tagged = [
            t
            for t in _traces(backends, service)
            if any(str(_span_tags(s).get(ATTR_CORRELATION_ID, "")).startswith("outage-up2-") for s in t["spans"])
        ]
        return tagged or None

    assert poll_until(after_restart, timeout=DEADLINE_S, what="telemetry sent after the collector came back")
    assert driver.proc.poll() is None, "the application must survive the outage"


def test_every_dashboard_panel_query_has_data(backends: Backends, demo_run: DemoRun) -> None:
    from cde_otel.health._dashboard import dashboard_queries

    queries = dashboard_queries(require_data=True)
    assert len(queries) >= 10
    for expr in queries:
        result = poll_until(partial(backends.prom_query, expr), timeout=DEADLINE_S, what=f"data for {expr}")
        assert result, expr


def test_demo_command_ships_to_the_collector_when_an_endpoint_is_set(backends: Backends, tmp_path: Path) -> None:
    service = f"cde-demo-{uuid.uuid4().hex[:8]}"
    done = run_demo(
        tmp_path,
        3,
        OTEL_SERVICE_NAME=service,
        OTEL_EXPORTER_OTLP_ENDPOINT=backends.otlp_http_endpoint,
        CDE_OTEL_LOCAL_DIR=str(tmp_path / "local"),
    )
    assert "otlp (http/protobuf)" in done.stdout
    assert not (tmp_path / "local" / "traces.jsonl").exists()  # shipped, not kept locally

    def completed() -> list[dict[str, Any]] | None:
        traces = _traces(backends, service)
        return traces if any(s["operationName"] == "Feature.complete" for t in traces for s in t["spans"]) else None

    assert poll_until(completed, timeout=DEADLINE_S, what="the demo's traces in Jaeger")
