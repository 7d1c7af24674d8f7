"""MCP tool calls through the real pipeline: stdio server → OTLP → Collector → Jaeger + Prometheus.

The orchestrator fixture on fastmcp 2.13.0 (upstream's pin; its span is ours, so the histogram
records exactly the span's duration) and ``cde-otel mcp`` are driven by the official client over
stdio with only ``CDE_OTEL_ENABLED=true`` and an OTLP endpoint set; the fixture also over
streamable HTTP under ``opentelemetry-instrument``, whose exporters then ship everything. Everything is polled with
deadlines; a missing backend or venv is an error, never a skip.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from backends import Backends, poll_until
from quantile_oracle import bucket_of_rank, exact_quantile

from cde_otel.semconv import (
    ATTR_CORRELATION_ID,
    ATTR_ERROR_CODE,
    ATTR_FEATURE_ID,
    ATTR_GEN_AI_TOOL_NAME,
    ATTR_PROJECT_ID,
)

DEADLINE_S = 90.0
FEATURES = 200  # each: one cde_startFeature and two cde_submitWork -> 200 and 400 samples per tool
TOOLS = ("cde_startFeature", "cde_submitWork")
ServerCommand = Callable[[str], tuple[str, list[str], dict[str, str]]]
RunSession = Callable[..., Any]


def _env(backends: Backends, service: str, **extra: str) -> dict[str, str]:
    return {
        "CDE_OTEL_ENABLED": "true",
        "OTEL_SERVICE_NAME": service,
        "OTEL_EXPORTER_OTLP_ENDPOINT": backends.otlp_http_endpoint,
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_BLRP_SCHEDULE_DELAY": "200",
        **extra,
    }


@dataclass
class ServerRun:
    service: str
    calls: dict[str, int]


def _workload(
    start_args: Callable[[str, int], dict[str, Any]], submit_args: Callable[[str, str, str], dict[str, Any]], path: str
) -> Callable[[Any], Any]:
    async def scenario(session: Any) -> dict[str, int]:
        calls = dict.fromkeys(TOOLS, 0)
        for i in range(FEATURES):
            started = await session.call_tool("cde_startFeature", start_args(path, i))
            feature_id = json.loads(started.content[0].text)["feature_id"]
            for phase in ("define", "decompose"):
                done = await session.call_tool("cde_submitWork", submit_args(feature_id, phase, path))
                assert not done.is_error, done.content
            calls["cde_startFeature"] += 1
            calls["cde_submitWork"] += 2
        failed = await session.call_tool("cde_submitWork", submit_args("no-such-feature", "define", path))
        assert "E104" in failed.content[0].text
        calls["cde_submitWork"] += 1
        return calls

    return scenario


@pytest.fixture(scope="module")
def orchestrator_run(
    backends: Backends,
    tmp_path_factory: pytest.TempPathFactory,
    orchestrator_server: ServerCommand,
    run_session: RunSession,
) -> ServerRun:
    work = tmp_path_factory.mktemp("mcp-orchestrator")
    (work / "project").mkdir()
    service = f"cde-mcp-e2e-{uuid.uuid4().hex[:8]}"
    scenario = _workload(
        lambda path, i: {"user_prompt": f"Feature number {i} of the e2e run", "project_path": path},
        lambda fid, phase, path: {"feature_id": fid, "phase_id": phase, "results": {"n": 1}, "project_path": path},
        str(work / "project"),
    )
    command, args, extra = orchestrator_server("fastmcp_2_13")
    calls = run_session(command, args, _env(backends, service, **extra), work, scenario)
    return ServerRun(service, calls)


def _traces(backends: Backends, service: str, **params: Any) -> list[dict[str, Any]]:
    return list(backends.jaeger_get("/api/traces", service=service, limit=20_000, **params).get("data") or [])


def _tags(span: dict[str, Any]) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in span.get("tags", [])}


def _check_nested_trace(trace: dict[str, Any]) -> dict[str, Any]:
    by_id = {s["spanID"]: s for s in trace["spans"]}
    roots: list[dict[str, Any]] = [s for s in trace["spans"] if not s.get("references")]
    [root] = roots
    assert root["operationName"] == "tools/call cde_submitWork"
    assert _tags(root)["span.kind"] == "server" and _tags(root)[ATTR_GEN_AI_TOOL_NAME] == "cde_submitWork"
    for span in trace["spans"]:
        parent = span
        while parent.get("references"):
            parent = by_id[parent["references"][0]["spanID"]]
        assert parent is root, f"{span['operationName']} is not under the tool span"
    names = {s["operationName"] for s in trace["spans"]}
    assert {
        "FileSystemProjectRepository.get_or_create",
        "Feature.advance_phase",
        "FileSystemProjectRepository.save",
    } <= names
    assert len({_tags(s)[ATTR_CORRELATION_ID] for s in trace["spans"]}) == 1
    return root


def test_jaeger_finds_a_tool_calls_trace_by_tool_name_with_domain_spans_nested(
    backends: Backends, orchestrator_run: ServerRun
) -> None:
    tags = json.dumps({ATTR_GEN_AI_TOOL_NAME: "cde_submitWork", ATTR_ERROR_CODE: "E104"})

    def failed() -> list[dict[str, Any]] | None:
        return _traces(backends, orchestrator_run.service, tags=tags) or None

    [trace] = poll_until(failed, timeout=DEADLINE_S, what="the failed cde_submitWork trace in Jaeger")
    [root] = [s for s in trace["spans"] if not s.get("references")]
    assert _tags(root)[ATTR_GEN_AI_TOOL_NAME] == "cde_submitWork"
    assert _tags(root)["otel.status_code"] == "ERROR" and _tags(root)["error"] is True

    def ok() -> dict[str, Any] | None:
        # A trace's spans can reach Jaeger in more than one batch: check it once it is whole.
        found = _traces(backends, orchestrator_run.service, tags=json.dumps({ATTR_GEN_AI_TOOL_NAME: "cde_submitWork"}))
        complete = [t for t in found if "Feature.advance_phase" in {s["operationName"] for s in t["spans"]}]
        return _check_nested_trace(complete[0]) if complete else None

    root = poll_until(ok, timeout=DEADLINE_S, what="a cde_submitWork trace with its domain spans, nested")
    feature_id = _tags(root)[ATTR_FEATURE_ID]

    def workflow() -> list[str] | None:
        found = _traces(backends, orchestrator_run.service, tags=json.dumps({ATTR_FEATURE_ID: feature_id}))
        roots = [s for t in found for s in t["spans"] if not s.get("references")]
        tools = sorted(str(_tags(s).get(ATTR_GEN_AI_TOOL_NAME)) for s in roots)
        return tools if len(tools) == 3 else None

    tools = poll_until(workflow, timeout=DEADLINE_S, what=f"every tool call of feature {feature_id}")
    assert tools == ["cde_startFeature", "cde_submitWork", "cde_submitWork"]


@pytest.mark.parametrize("tool", TOOLS)
def test_prometheus_per_tool_percentiles_match_the_span_durations(
    backends: Backends, orchestrator_run: ServerRun, tool: str
) -> None:
    service, expected = orchestrator_run.service, orchestrator_run.calls[tool]
    selector = f'mcp_server_operation_duration_seconds{{gen_ai_tool_name="{tool}",service_name="{service}"}}'

    def counted() -> float | None:
        result = backends.prom_query(f"histogram_count(sum({selector}))")
        value = float(result[0]["value"][1]) if result else 0.0
        return value if value >= expected else None

    assert poll_until(counted, timeout=DEADLINE_S, what=f"all {tool} records in Prometheus") == expected

    def durations() -> list[float] | None:
        # "Exact" = the same calls' span durations: for a span the instrumentation creates, the
        # histogram records exactly end - start (Jaeger keeps microseconds).
        found = _traces(backends, service, operation=f"tools/call {tool}")
        values = [s["duration"] / 1e6 for t in found for s in t["spans"] if s["operationName"] == f"tools/call {tool}"]
        return values if len(values) == expected else None

    exact = poll_until(durations, timeout=DEADLINE_S, what=f"all {tool} spans in Jaeger")
    [summed] = backends.prom_query(f"sum({selector})")
    for q in (0.5, 0.95, 0.99):
        [sample] = backends.prom_query(f"histogram_quantile({q}, sum({selector}))")
        estimated = float(sample["value"][1])
        truth = exact_quantile(exact, q)
        # Within 2 %; at the tail of a few hundred calls, where neighbouring calls are further apart
        # than that, at least in the bucket that holds the observation of that rank (the best a
        # histogram can do, at the resolution of the summed series there).
        bucket = bucket_of_rank(summed["histogram"][1], exact, q)
        in_bucket = bucket is not None and bucket[0] <= estimated <= bucket[1]
        assert abs(estimated - truth) / truth <= 0.02 or in_bucket, (tool, q, estimated, truth, bucket)


def test_cde_otel_mcp_ships_one_trace_per_tool_call(
    backends: Backends, tmp_path: Path, run_session: RunSession
) -> None:
    (tmp_path / "project").mkdir()
    service = f"cde-otel-mcp-e2e-{uuid.uuid4().hex[:8]}"

    async def scenario(session: Any) -> str:
        started = await session.call_tool(
            "cde_startFeature", {"prompt": "Add login", "project_path": str(tmp_path / "project")}
        )
        feature_id: str = json.loads(started.content[0].text)["feature_id"]
        done = await session.call_tool(
            "cde_submitWork", {"feature_id": feature_id, "phase": "define", "project_path": str(tmp_path / "project")}
        )
        assert not done.is_error
        return feature_id

    feature_id = run_session(
        str(Path(sys.executable).with_name("cde-otel")), ["mcp"], _env(backends, service), tmp_path, scenario
    )

    def submitted() -> dict[str, Any] | None:
        found = _traces(backends, service, tags=json.dumps({ATTR_GEN_AI_TOOL_NAME: "cde_submitWork"}))
        complete = [t for t in found if "FileSystemProjectRepository.save" in {s["operationName"] for s in t["spans"]}]
        if not complete:
            return None
        [trace] = complete
        return _check_nested_trace(trace)

    root = poll_until(submitted, timeout=DEADLINE_S, what="cde-otel mcp's cde_submitWork trace in Jaeger, whole")
    assert _tags(root)[ATTR_FEATURE_ID] == feature_id
    assert _tags(root)[ATTR_PROJECT_ID]  # from the structured result: every call of the project, by tag


def test_jaeger_follows_a_tool_spans_link_to_its_http_requests_trace(
    backends: Backends,
    tmp_path: Path,
    venv_python: Callable[[str], Path],
    clean_env: Callable[..., dict[str, str]],
) -> None:
    """Streamable HTTP under opentelemetry-instrument (Starlette/ASGI): the agent's ``_meta`` context
    is the tool span's parent, and its link leads to the ``POST /mcp`` span of the HTTP request."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
    from mcp_http_harness import HttpCase, HttpServer, drive  # type: ignore[import-not-found]

    service = f"cde-mcp-http-e2e-{uuid.uuid4().hex[:8]}"
    env = clean_env(
        OTEL_SERVICE_NAME=service,
        OTEL_EXPORTER_OTLP_ENDPOINT=backends.otlp_http_endpoint,
        OTEL_TRACES_EXPORTER="otlp_proto_http",
        OTEL_LOGS_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
    )
    env.pop("PYTHONPATH", None)
    agent_trace, agent_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    case = HttpCase("fastmcp-2.13+launcher", "fastmcp_2_13", sdk_server=False, launcher=True)
    server = HttpServer(case, venv_python(case.venv), tmp_path, env)
    try:
        meta = f"00-{agent_trace}-{agent_span}-01"
        drive(server.url, [{"calls": [{"project_path": str(tmp_path / "project"), "meta": meta}]}], clean_env())

        def tool_span() -> dict[str, Any] | None:
            found = _traces(backends, service, operation="tools/call cde_startFeature")
            spans = [s for t in found for s in t["spans"] if s["operationName"] == "tools/call cde_startFeature"]
            return spans[0] if spans else None

        span = poll_until(tool_span, timeout=DEADLINE_S, what="the tool span in Jaeger")
    finally:
        server.stop()
    assert span["traceID"] == agent_trace
    [parent] = [r for r in span["references"] if r["refType"] == "CHILD_OF"]
    assert parent["spanID"] == agent_span
    [link] = [r for r in span["references"] if r["refType"] == "FOLLOWS_FROM"]
    assert link["traceID"] != agent_trace

    def linked_span() -> dict[str, Any] | None:
        # The request's inner ASGI spans end, and may reach Jaeger, before its server span does.
        data = backends.jaeger_get(f"/api/traces/{link['traceID']}").get("data") or []
        spans = [s for t in data for s in t["spans"] if s["spanID"] == link["spanID"]]
        return spans[0] if spans else None

    http = poll_until(linked_span, timeout=DEADLINE_S, what="the HTTP request's server span in Jaeger")
    assert http["operationName"].startswith("POST /mcp")
    assert _tags(http)["span.kind"] == "server"
