"""The embedded default's closed loop against the real stack: record locally, look, ship later, compare.

Two sessions of the orchestrator fixture (rotated between them) write the local OTLP-JSON files;
``cde-otel export`` ships them into the real Collector (interrupted twice: by ``--max-batches``
and by stopping the collector), then what the local commands say is compared with what Jaeger and
Prometheus say about the same data, and with the exact quantiles of the same calls.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from backends import Backends, poll_until
from quantile_oracle import exact_quantile, near_an_exact_quantile, nearest_rank_quantile
from scale_backends import ScaleOutBackends
from typer.testing import CliRunner, Result

from cde_otel.cli import app
from cde_otel.semconv import ATTR_GEN_AI_TOOL_NAME

DEADLINE_S = 90.0
FEATURES = 100  # per session, two sessions: 200 cde_startFeature and 402 cde_submitWork calls
SpanReader = Callable[[Path], Iterator[dict[str, Any]]]


def _cli(*args: str) -> Result:
    """The command in this process (the same code as the ``cde-otel`` script, without a start-up per call)."""
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})  # one line per span in a tree


def _json(*args: str) -> Any:
    done = _cli(*args, "--json")
    assert done.exit_code == 0, done.output[-3000:]
    return json.loads(done.stdout)


def _accepted_spans(backends: Backends) -> float:
    return ScaleOutBackends.metric_sum(
        backends.collector_metrics_url, "otelcol_receiver_accepted_spans", receiver="otlp", transport="http"
    )


@dataclass
class Shipped:
    local: Path
    service: str
    calls: dict[str, int]
    spans: list[dict[str, Any]]
    accepted: float  # spans the collector accepted over the whole interrupted export
    runs: list[dict[str, Any]]


@pytest.fixture(scope="module")
def shipped(backends: Backends, record_mcp_sessions: Callable[..., Any], otlp_json_spans: SpanReader) -> Shipped:
    recorded = record_mcp_sessions(FEATURES, service=f"cde-local-e2e-{uuid.uuid4().hex[:8]}")
    local = recorded.local
    spans = [s for path in sorted(local.glob("traces*.jsonl")) for s in otlp_json_spans(path)]
    to = ("export", "--to", backends.otlp_http_endpoint, "--dir", str(local))

    before = _accepted_spans(backends)
    first = _json(*to, "--max-batches", "3", "--batch-lines", "4")  # stops inside the first file
    assert not first["complete"] and first["signals"]["traces"]["batches"] == 3
    accepted_first = poll_until(
        lambda: (_accepted_spans(backends) - before) or None, timeout=DEADLINE_S, what="the first batches accepted"
    )
    backends.stop_collector()
    try:
        refused = _cli(*to, "--retries", "1")
        assert refused.exit_code == 1 and "[E406]" in refused.stderr, refused.output
    finally:
        backends.start_collector()  # its own counters start again from zero
    rest = _json(*to)
    assert rest["complete"]
    expected = len(spans) - first["signals"]["traces"]["items"]
    accepted_rest = poll_until(
        lambda: _accepted_spans(backends) if _accepted_spans(backends) >= expected else None,
        timeout=DEADLINE_S,
        what="the rest of the spans accepted",
    )
    return Shipped(local, recorded.service, recorded.calls, spans, accepted_first + accepted_rest, [first, rest])


def test_export_delivers_every_span_exactly_once_across_interruptions(backends: Backends, shipped: Shipped) -> None:
    assert shipped.accepted == len(shipped.spans)
    assert sum(run["signals"]["traces"]["items"] for run in shipped.runs) == len(shipped.spans)
    assert len({s["spanId"] for s in shipped.spans}) == len(shipped.spans)

    def in_jaeger() -> set[str] | None:
        found = backends.jaeger_get("/api/traces", service=shipped.service, limit=20_000).get("data") or []
        ids = {span["spanID"] for trace in found for span in trace["spans"]}
        return ids if len(ids) >= len(shipped.spans) else None

    ids = poll_until(in_jaeger, timeout=DEADLINE_S, what="every exported span in Jaeger")
    assert ids == {s["spanId"] for s in shipped.spans}
    again = _json("export", "--to", backends.otlp_http_endpoint, "--dir", str(shipped.local))
    assert again["complete"] and all(s["lines"] == 0 for s in again["signals"].values())


def _wait_for_jaeger(backends: Backends, shipped: Shipped) -> None:
    def complete() -> bool:
        found = backends.jaeger_get("/api/traces", service=shipped.service, limit=20_000).get("data") or []
        return sum(len(trace["spans"]) for trace in found) >= len(shipped.spans)

    poll_until(complete, timeout=DEADLINE_S, what="every span in Jaeger")


def _strip_durations(node: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in node.items() if k not in {"duration_ms", "start_unix_nano", "children"}}
    return {**kept, "children": [_strip_durations(child) for child in node["children"]]}


def _durations(node: dict[str, Any]) -> list[float]:
    return [node["duration_ms"], *(d for child in node["children"] for d in _durations(child))]


_DURATION = re.compile(r"\d+\.\d\d ms")


def test_traces_show_from_the_files_equals_what_jaeger_returns(backends: Backends, shipped: Shipped) -> None:
    _wait_for_jaeger(backends, shipped)
    local = str(shipped.local)
    failed = _json("traces", "--dir", local, "--errors")["spans"]
    submits = _json("traces", "--dir", local, "--tool", "cde_submitWork", "-n", "3")["spans"]
    assert failed and submits
    for call in [failed[0], *submits]:
        files = _json("traces", "show", call["trace_id"], "--dir", local)["spans"]
        jaeger = _json("traces", "show", call["trace_id"], "--jaeger", backends.jaeger_url)["spans"]
        assert [_strip_durations(n) for n in jaeger] == [_strip_durations(n) for n in files]
        # Jaeger keeps microseconds: start and end are cut to the microsecond separately.
        for ours, theirs in zip(_durations(files[0]), _durations(jaeger[0]), strict=True):
            assert abs(ours - theirs) <= 0.002
        text_files = _cli("traces", "show", call["trace_id"], "--dir", local).stdout
        text_jaeger = _cli("traces", "show", call["trace_id"], "--jaeger", backends.jaeger_url).stdout
        assert text_files.count("\n") >= 3 and call["trace_id"] in text_files
        tree = [_DURATION.sub("X ms", line) for line in text_files.splitlines()]
        assert tree == [_DURATION.sub("X ms", line) for line in text_jaeger.splitlines()]


def test_traces_lists_the_same_tool_calls_from_the_files_and_from_jaeger(backends: Backends, shipped: Shipped) -> None:
    _wait_for_jaeger(backends, shipped)
    local = _json("traces", "--dir", str(shipped.local), "--tool", "cde_startFeature", "-n", "1000")["spans"]
    remote = _json(
        "traces", "--jaeger", backends.jaeger_url, "--service", shipped.service, "--tool", "cde_startFeature",
        "-n", "1000",
    )["spans"]  # fmt: skip
    assert len(local) == shipped.calls["cde_startFeature"]
    assert [(r["trace_id"], r["name"], r["attributes"]) for r in remote] == [
        (r["trace_id"], r["name"], r["attributes"]) for r in local
    ]
    errors = _json("traces", "--jaeger", backends.jaeger_url, "--service", shipped.service, "--errors")["spans"]
    assert [r["error_code"] for r in errors] == ["E104", "E104"]


def _rows(payload: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(row["kind"], row["name"]): row for row in payload["rows"]}


def test_latency_agrees_with_prometheus_and_with_the_exact_quantiles(backends: Backends, shipped: Shipped) -> None:
    selector = f'mcp_server_operation_duration_seconds{{service_name="{shipped.service}"}}'
    total = sum(shipped.calls.values())

    def in_prometheus() -> float | None:
        result = backends.prom_query(f'histogram_count(sum({selector[:-1]},gen_ai_tool_name!=""}}))')
        value = float(result[0]["value"][1]) if result else 0.0
        return value if value >= total else None

    assert poll_until(in_prometheus, timeout=DEADLINE_S, what="every tool call in Prometheus") == total
    # Prometheus 2.x interpolates linearly inside a native bucket; 3.x exponentially (our default).
    answer = subprocess.run([backends.binaries.prometheus, "--version"], capture_output=True, text=True, check=True)
    interpolation = "linear" if re.search(r"version 2\.", answer.stdout + answer.stderr) else "exponential"
    files = _rows(_json("latency", "--dir", str(shipped.local), "--interpolation", interpolation))
    prometheus = _rows(_json("latency", "--prometheus", backends.prometheus_url, "--service", shipped.service))
    assert set(prometheus) == set(files)
    scale = min(_scales(shipped.local))
    bucket = 2 ** (2**-scale) - 1  # one bucket: the files know min/max (and clamp to them), Prometheus cannot
    for key, ours in files.items():
        theirs = prometheus[key]
        assert (theirs["count"], theirs["errors"]) == (ours["count"], ours["errors"]), key
        for column in ("p50_s", "p95_s", "p99_s"):
            assert abs(theirs[column] - ours[column]) / ours[column] <= bucket, (key, column, theirs, ours)

    exact_rows = _rows(_json("latency", "--dir", str(shipped.local)))
    for tool in ("cde_startFeature", "cde_submitWork"):
        durations = [
            (int(s["endTimeUnixNano"]) - int(s["startTimeUnixNano"])) / 1e9
            for s in shipped.spans
            if s["kind"] == 2 and s["attrs"].get(ATTR_GEN_AI_TOOL_NAME) == tool
        ]
        row = exact_rows["tool", tool]
        assert row["count"] == len(durations) == shipped.calls[tool]
        for column, q in (("p50_s", 0.5), ("p95_s", 0.95), ("p99_s", 0.99)):
            truth = exact_quantile(durations, q), nearest_rank_quantile(durations, q)
            assert near_an_exact_quantile(row[column], durations, q, 0.02), (tool, column, row[column], truth)


def _scales(local: Path) -> Iterator[int]:
    for path in local.glob("metrics*.jsonl"):
        for line in path.read_text().splitlines():
            for text in re.findall(r'"scale": ?(-?\d+)', line):
                yield int(text)


def test_unreachable_jaeger_and_prometheus_are_coded_errors() -> None:
    closed = "http://127.0.0.1:9"
    for args in (("traces", "--jaeger", closed), ("latency", "--prometheus", closed)):
        done = _cli(*args)
        assert done.exit_code == 1 and "[E406]" in done.stderr, (args, done.output)
