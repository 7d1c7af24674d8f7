"""The embedded default's files, read by the real Collector: every span, metric and log record arrives.

``cde-otel demo`` runs with no OTLP endpoint and a small ``CDE_OTEL_LOCAL_MAX_MB``, so its files
rotate mid-run. Each line of every file (rotated ones first) is then posted, as it is, to the
Collector's OTLP/HTTP receiver with ``Content-Type: application/json``: the receiver decodes it
with the same pdata OTLP-JSON unmarshaler as the ``otlpjsonfile`` receiver (one
``Export*ServiceRequest`` per line). What the Collector accepted is then found in Jaeger (every
span id), Prometheus (the operation histogram) and the Collector's log file (every log record).
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from backends import Backends, poll_until
from cli_demo import run_demo

from cde_otel.telemetry._local_files import rotated_files

DEADLINE_S = 60.0
PATHS = {"traces": "/v1/traces", "metrics": "/v1/metrics", "logs": "/v1/logs"}


def _post(url: str, line: bytes) -> int:
    request = urllib.request.Request(url, data=line, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:  # loopback only
        return int(response.status)


def _requests(directory: Path, signal: str) -> list[dict[str, Any]]:
    paths = [*rotated_files(directory, signal), directory / f"{signal}.jsonl"]
    return [json.loads(line) for path in paths for line in path.read_bytes().splitlines() if line]


def test_every_line_of_the_local_files_is_accepted_whole_by_the_collector(backends: Backends, tmp_path: Path) -> None:
    service = f"cde-local-{uuid.uuid4().hex[:8]}"
    local = tmp_path / "local"
    run_demo(
        tmp_path,
        12,
        OTEL_SERVICE_NAME=service,
        CDE_OTEL_LOCAL_DIR=str(local),
        CDE_OTEL_LOCAL_MAX_MB="0.6",  # 200 KB per signal, rolling over at 50 KB
        OTEL_BSP_SCHEDULE_DELAY="50",
        OTEL_BLRP_SCHEDULE_DELAY="50",
        OTEL_METRIC_EXPORT_INTERVAL="200",
    )
    assert rotated_files(local, "traces"), "the demo's spans should have rotated the traces file"

    sent: dict[str, list[dict[str, Any]]] = {signal: _requests(local, signal) for signal in PATHS}
    for signal, requests in sent.items():
        assert requests, signal
        for request in requests:
            status = _post(backends.otlp_http_endpoint + PATHS[signal], json.dumps(request).encode())
            assert status == 200, (signal, status)

    span_ids = {
        span["spanId"]
        for request in sent["traces"]
        for resource in request["resourceSpans"]
        for scope in resource["scopeSpans"]
        for span in scope["spans"]
    }

    def all_spans_in_jaeger() -> set[str] | None:
        traces = backends.jaeger_get("/api/traces", service=service, limit=20_000).get("data") or []
        found = {span["spanID"] for trace in traces for span in trace["spans"]}
        return found if span_ids <= found else None

    found = poll_until(all_spans_in_jaeger, timeout=DEADLINE_S, what="every span of the local files in Jaeger")
    assert found == span_ids  # and nothing else

    log_bodies = sorted(
        json.dumps(record.get("body"), sort_keys=True)
        for request in sent["logs"]
        for resource in request["resourceLogs"]
        for scope in resource["scopeLogs"]
        for record in scope["logRecords"]
    )

    def all_logs_in_the_collector() -> list[str] | None:
        received = sorted(
            json.dumps(record.get("body"), sort_keys=True)
            for record in backends.collector_log_records()
            if any(
                attribute["key"] == "service.name" and attribute["value"].get("stringValue") == service
                for attribute in record["_resource"].get("attributes", [])
            )
        )
        return received if len(received) >= len(log_bodies) else None

    received = poll_until(all_logs_in_the_collector, timeout=DEADLINE_S, what="every log record in the collector")
    assert received == log_bodies

    selector = f'cde_operation_duration_seconds{{service_name="{service}"}}'
    poll_until(
        lambda: backends.prom_query(f"histogram_count(sum({selector}))"),
        timeout=DEADLINE_S,
        what="the operation histogram from the local metric files in Prometheus",
    )
