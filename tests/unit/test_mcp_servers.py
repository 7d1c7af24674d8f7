"""Real MCP servers, real client: the official SDK drives each server over stdio and the trace shape is checked.

Servers: ``cde-otel mcp`` (official SDK 2.x, which opens the span itself), and the orchestrator
fixture (tests/mcp_fixtures: upstream's module layout) on standalone fastmcp 2.13.0 (the
orchestrator's pin; mcp 1.x, no spans of its own - imported before and after cde-otel started),
on the official SDK 1.x's FastMCP, and on the current FastMCP (which opens its own span). Each
runs in its own cached venv with cde-otel installed from this checkout and only
``CDE_OTEL_ENABLED=true`` set; its telemetry is read back from the OTLP-JSON files. Each run also
provokes every kind of failure (a coded error, a raise, upstream's envelope wrapped by the
framework's output validation, a JSON-RPC error, an unknown method) and checks the conventions'
``error.type``, our ``cde.error.code``, and that span, duration histogram and ``cde.errors`` agree.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import types
from mcp.client.session import DEFAULT_CLIENT_INFO
from mcp.shared.exceptions import MCPError
from opentelemetry import baggage, context, trace

from cde_otel.semconv import (
    ATTR_CORRELATION_ID,
    ATTR_ERROR_CODE,
    ATTR_ERROR_TYPE,
    ATTR_FEATURE_ID,
    ATTR_FEATURE_PHASE,
    ATTR_GEN_AI_OPERATION_NAME,
    ATTR_GEN_AI_TOOL_NAME,
    ATTR_JSONRPC_REQUEST_ID,
    ATTR_MCP_CLIENT_NAME,
    ATTR_MCP_CLIENT_VERSION,
    ATTR_MCP_METHOD_NAME,
    ATTR_MCP_PROTOCOL_VERSION,
    ATTR_NETWORK_TRANSPORT,
    ATTR_OPERATION,
    ATTR_PROJECT_PATH,
    ATTR_RPC_RESPONSE_STATUS_CODE,
    CORRELATION_KEY,
    EXECUTE_TOOL,
    LOG_FIELDS,
    METRIC_ERRORS,
    METRIC_FEATURES_ACTIVE,
    METRIC_MCP_SERVER_OPERATION_DURATION,
    METRIC_MCP_SERVER_SESSION_DURATION,
    NETWORK_TRANSPORT_PIPE,
    OTHER_VALUE,
    TOOL_ERROR,
)
from cde_otel.testing import CapturedTelemetry

CORRELATION = "agent-run-7"
UNKNOWN_METHOD = "cde/noSuchMethod"
SERVER_KIND = 2
EnvFactory = Callable[..., dict[str, str]]
SpanReader = Callable[[Path], Iterator[dict[str, Any]]]
LogReader = Callable[[Path], list[dict[str, Any]]]
PointReader = Callable[[Path, str], list[dict[str, Any]]]
ServerCommand = Callable[[str], tuple[str, list[str], dict[str, str]]]


@dataclass(frozen=True)
class ServerCase:
    id: str
    venv: str | None  # the orchestrator fixture from this cached venv; None: `cde-otel mcp` from this venv
    start: Callable[[str], dict[str, Any]]
    submit: Callable[[str, str, str], dict[str, Any]]
    env: dict[str, str] = field(default_factory=dict)
    raising_tool: str | None = None  # a tool whose exception the framework turns into isError
    wrapped_tool: str | None = None  # upstream's dict envelope from a str tool: the framework's validation wraps it


def _fixture_case(case_id: str, venv: str, **env: str) -> ServerCase:
    return ServerCase(
        case_id,
        venv,
        start=lambda path: {"user_prompt": "Add login with OAuth", "project_path": path},
        submit=lambda fid, phase, path: {
            "feature_id": fid,
            "phase_id": phase,
            "results": {"spec": "s"},
            "project_path": path,
        },
        env=env,
        raising_tool="cde_getFeatureStatus",
        wrapped_tool="cde_getFeatureSummary",
    )


CASES = [
    ServerCase(
        "cde-otel-mcp",
        None,
        start=lambda path: {"prompt": "Add login with OAuth", "project_path": path},
        submit=lambda fid, phase, path: {
            "feature_id": fid,
            "phase": phase,
            "results": {"spec": "s"},
            "project_path": path,
        },
    ),
    _fixture_case("fastmcp-2.13", "fastmcp_2_13"),
    _fixture_case("fastmcp-2.13-imported-late", "fastmcp_2_13", CDE_FIXTURE_IMPORT_ORDER="late"),
    _fixture_case("mcp-1.x-FastMCP", "fastmcp_2_13", CDE_FIXTURE_FRAMEWORK="mcp"),
    _fixture_case("fastmcp-4", "fastmcp_4"),
]


class SpanTree:
    """OTLP-JSON spans indexed by id, with parent and ancestor lookups."""

    def __init__(self, spans: list[dict[str, Any]]) -> None:
        self.spans = spans
        self.by_id = {s["spanId"]: s for s in spans}

    def named(self, name: str) -> list[dict[str, Any]]:
        return [s for s in self.spans if s["name"] == name]

    def servers(self) -> list[dict[str, Any]]:
        return [s for s in self.spans if s.get("kind") in (SERVER_KIND, "SPAN_KIND_SERVER")]

    def in_trace(self, trace_id: str) -> list[dict[str, Any]]:
        return [s for s in self.spans if s["traceId"] == trace_id]

    def ancestors(self, span: dict[str, Any]) -> list[dict[str, Any]]:
        found = []
        parent = self.by_id.get(span.get("parentSpanId", ""))
        while parent is not None:
            found.append(parent)
            parent = self.by_id.get(parent.get("parentSpanId", ""))
        return found

    def descendants(self, span: dict[str, Any]) -> list[dict[str, Any]]:
        return [s for s in self.spans if span in self.ancestors(s)]


def _read_spans(otlp_json_spans: SpanReader, local_dir: Path, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The server's spans from its traces.jsonl (written by its exit-time flush), polled with a deadline."""
    path = local_dir / "traces.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size:
            try:
                return list(otlp_json_spans(path))
            except json.JSONDecodeError:
                pass  # a line still being written
        time.sleep(0.05)
    raise AssertionError(f"no spans in {path} after {timeout}s")


@dataclass
class Run:
    tree: SpanTree
    local: Path
    feature_id: str
    client_span_id: str
    client_trace_id: str
    server: str
    case: ServerCase
    rpc_codes: dict[str, str]  # method -> the JSON-RPC error code the client received


def _server(
    case: ServerCase, local: Path, orchestrator_server: ServerCommand, clean_env: EnvFactory
) -> tuple[str, list[str], dict[str, str]]:
    """The server's command line and environment: telemetry on, kept locally as OTLP-JSON in
    ``local``, nothing inherited from this process's telemetry settings or PYTHONPATH."""
    extra: dict[str, str] = {}
    if case.venv is None:
        command, args = str(Path(sys.executable).with_name("cde-otel")), ["mcp"]
    else:
        command, args, extra = orchestrator_server(case.venv)
    env = clean_env(CDE_OTEL_ENABLED="true", CDE_OTEL_LOCAL_DIR=str(local), OTEL_METRIC_EXPORT_INTERVAL="500")
    env.pop("PYTHONPATH", None)
    return command, args, {**env, **extra, **case.env}


@pytest.fixture(scope="module", params=CASES, ids=[c.id for c in CASES])
def run(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    global_telemetry: CapturedTelemetry,
    orchestrator_server: ServerCommand,
    run_session: Callable[..., Any],
    clean_env: EnvFactory,
    otlp_json_spans: SpanReader,
) -> Run:
    """One server driven by the official client (the test process's global telemetry holds the client's spans)."""
    case: ServerCase = request.param
    tmp_path = tmp_path_factory.mktemp(case.id)
    client_telemetry = global_telemetry
    client_telemetry.span_exporter.clear()
    project = tmp_path / "project"
    project.mkdir()
    local = tmp_path / "telemetry"
    command, args, env = _server(case, local, orchestrator_server, clean_env)
    path = str(project)

    async def scenario(session: Any) -> str:
        if case.raising_tool:  # first, before any tools/list: the server's registry names its span
            raised = await session.call_tool(case.raising_tool, {"feature_id": "no-such-feature", "project_path": path})
            assert raised.is_error
        tools = {t.name for t in (await session.list_tools()).tools}
        assert {"cde_startFeature", "cde_submitWork"} <= tools
        started = await session.call_tool("cde_startFeature", case.start(path))
        assert not started.is_error, started.content
        feature_id: str = json.loads(started.content[0].text)["feature_id"]
        # The agent's own trace and correlation id: the official client injects both into params._meta.
        tracer = client_telemetry.tracer_provider.get_tracer("agent")
        token = context.attach(baggage.set_baggage(CORRELATION_KEY, CORRELATION))
        try:
            with tracer.start_as_current_span("agent step"):
                done = await session.call_tool("cde_submitWork", case.submit(feature_id, "define", path))
        finally:
            context.detach(token)
        assert not done.is_error, done.content
        failed = await session.call_tool("cde_submitWork", case.submit("no-such-feature", "define", path))
        assert "E104" in failed.content[0].text
        if case.wrapped_tool:
            await _call_wrapped(session, case.wrapped_tool, path)
        # A JSON-RPC error (a request without its params) and a method no server knows: the codes
        # the client got back are what the spans and metrics must say.
        for method in ("prompts/get", UNKNOWN_METHOD):
            with pytest.raises(MCPError) as refused:
                await session.send_request(types.Request(method=method, params=None), types.EmptyResult)
            rpc_codes[method] = str(refused.value.error.code)
        return feature_id

    rpc_codes: dict[str, str] = {}
    feature_id = run_session(command, args, env, tmp_path, scenario)
    [agent_step] = client_telemetry.spans("agent step")
    [client_span] = [
        s
        for s in client_telemetry.spans("MCP send tools/call cde_submitWork")
        if s.parent and s.parent.span_id == agent_step.context.span_id
    ]
    return Run(
        SpanTree(_read_spans(otlp_json_spans, local)),
        local,
        feature_id,
        trace.format_span_id(client_span.context.span_id),
        trace.format_trace_id(client_span.context.trace_id),
        case.id,
        case,
        rpc_codes,
    )


async def _call_wrapped(session: Any, tool: str, path: str) -> None:
    """The newest FastMCP answers the envelope as structured output the official client then
    rejects against the tool's schema; fastmcp 2.13 and the SDK's FastMCP answer isError."""
    try:
        wrapped = await session.call_tool(tool, {"feature_id": "no-such-feature", "project_path": path})
    except RuntimeError as rejected:  # the client's own output validation
        assert "error_code" in str(rejected)
    else:
        assert wrapped.is_error  # the code may be elided from the text (the SDK's FastMCP): the span digs it out


def _tool_spans(tree: SpanTree, tool: str) -> list[dict[str, Any]]:
    return [s for s in tree.servers() if s["attrs"].get(ATTR_GEN_AI_TOOL_NAME) == tool]


def test_each_request_is_one_server_span_with_the_mcp_conventions(run: Run) -> None:
    by_request: dict[str, int] = {}
    for span in run.tree.servers():
        request_id = span["attrs"].get(ATTR_JSONRPC_REQUEST_ID)
        if request_id is not None:
            by_request[request_id] = by_request.get(request_id, 0) + 1
    assert by_request and set(by_request.values()) == {1}, f"duplicate SERVER spans: {by_request}"
    assert run.tree.named("initialize") and run.tree.named("tools/list")
    [submit, failed] = sorted(_tool_spans(run.tree, "cde_submitWork"), key=lambda s: int(s["startTimeUnixNano"]))
    for span in (submit, failed):
        attrs = span["attrs"]
        assert span["name"] == "tools/call cde_submitWork"
        assert attrs[ATTR_MCP_METHOD_NAME] == "tools/call"
        assert attrs[ATTR_GEN_AI_OPERATION_NAME] == EXECUTE_TOOL
        assert attrs[ATTR_NETWORK_TRANSPORT] == NETWORK_TRANSPORT_PIPE
        assert attrs[ATTR_MCP_PROTOCOL_VERSION]
        assert attrs[ATTR_PROJECT_PATH].endswith("project")
        assert attrs[ATTR_FEATURE_PHASE] == "define"


def test_one_trace_per_tool_call_with_the_domain_spans_nested(run: Run) -> None:
    tools = [s for s in run.tree.servers() if s["attrs"].get(ATTR_MCP_METHOD_NAME) == "tools/call"]
    assert len({s["traceId"] for s in tools}) == len(tools), "every tool call is its own trace"
    for tool in tools:
        inside = run.tree.in_trace(tool["traceId"])
        assert all(s is tool or tool in run.tree.ancestors(s) for s in inside), tool["name"]
        assert len({s["attrs"].get(ATTR_CORRELATION_ID) for s in inside}) == 1, tool["name"]
    for span in run.tree.spans:
        if span.get("kind") != SERVER_KIND:
            assert any(a.get("kind") == SERVER_KIND for a in run.tree.ancestors(span)), f"{span['name']} is a root"
    [start] = _tool_spans(run.tree, "cde_startFeature")
    names = {s["name"] for s in run.tree.descendants(start)}
    assert {
        "FileSystemProjectRepository.get_or_create",
        "Project.start_feature",
        "FileSystemProjectRepository.save",
    } <= names
    assert start["attrs"][ATTR_FEATURE_ID] == run.feature_id  # read from the result: the workflow starts here


def test_the_clients_trace_context_and_correlation_id_are_honoured(run: Run) -> None:
    [submit] = [s for s in _tool_spans(run.tree, "cde_submitWork") if ATTR_ERROR_TYPE not in s["attrs"]]
    assert submit["traceId"] == run.client_trace_id
    assert submit["parentSpanId"] == run.client_span_id
    assert submit["attrs"][ATTR_FEATURE_ID] == run.feature_id
    inside = run.tree.descendants(submit)
    assert {"Feature.advance_phase", "FileSystemProjectRepository.save"} <= {s["name"] for s in inside}
    assert {s["attrs"][ATTR_CORRELATION_ID] for s in [submit, *inside]} == {CORRELATION}
    assert all(
        s["attrs"].get(ATTR_FEATURE_ID) == run.feature_id
        for s in inside
        if s["name"] != "FileSystemProjectRepository.get_or_create"
        and s["name"] != "FileSystemProjectRepository.get_by_path"
    )


def _exception_events(span: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {a["key"]: next(iter(a["value"].values())) for a in event.get("attributes", [])}
        for event in span.get("events", [])
        if event["name"] == "exception"
    ]


def _one(spans: list[dict[str, Any]], what: str) -> dict[str, Any]:
    assert len(spans) == 1, f"{what}: {len(spans)} spans, not one"
    return spans[0]


def _failures(run: Run) -> list[tuple[str, dict[str, Any], str, str | None]]:
    """(what, its span, error.type, cde.error.code) of every failure the scenario provoked."""
    codes = run.rpc_codes
    [submit] = [s for s in _tool_spans(run.tree, "cde_submitWork") if ATTR_ERROR_TYPE in s["attrs"]]
    # cde-otel mcp answers isError with its coded JSON; the fixture the upstream envelope as a normal result.
    found: list[tuple[str, dict[str, Any], str, str | None]] = [("coded failure", submit, TOOL_ERROR, "E104")]
    if run.case.raising_tool:
        raised = _one(_tool_spans(run.tree, run.case.raising_tool), "the raising tool")
        found.append(("raise", raised, TOOL_ERROR, None))
    if run.case.wrapped_tool:
        wrapped = _one(_tool_spans(run.tree, run.case.wrapped_tool), "the wrapped envelope")
        found.append(("wrapped envelope", wrapped, TOOL_ERROR, "E104"))
    servers = run.tree.servers()
    rpc = _one([s for s in servers if s["attrs"].get(ATTR_MCP_METHOD_NAME) == "prompts/get"], "prompts/get")
    found.append(("JSON-RPC error", rpc, codes["prompts/get"], None))
    unknown = _one([s for s in servers if s["attrs"].get(ATTR_MCP_METHOD_NAME) == UNKNOWN_METHOD], "unknown method")
    found.append(("unknown method", unknown, codes[UNKNOWN_METHOD], None))
    return found


def test_failures_follow_the_conventions_and_span_and_metrics_agree(run: Run, otlp_json_points: PointReader) -> None:
    # mcp 2.x answers an unknown method -32601; mcp 1.x rejects it in validation, -32602.
    assert run.rpc_codes["prompts/get"] == "-32602" and run.rpc_codes[UNKNOWN_METHOD] in ("-32601", "-32602")
    durations = [
        p["attrs"] for p in otlp_json_points(run.local / "metrics.jsonl", METRIC_MCP_SERVER_OPERATION_DURATION)
    ]
    errors = [p["attrs"] for p in otlp_json_points(run.local / "metrics.jsonl", METRIC_ERRORS)]
    for what, span, error_type, code in _failures(run):
        attrs = span["attrs"]
        assert (attrs[ATTR_ERROR_TYPE], attrs.get(ATTR_ERROR_CODE)) == (error_type, code), what
        assert span["status"]["code"] == 2 and 0 < len(span["status"].get("message", "")) <= 256, what
        if error_type.startswith("-"):
            assert attrs[ATTR_RPC_RESPONSE_STATUS_CODE] == error_type, what
        assert len(_exception_events(span)) <= 1, what
        method, _, tool = span["name"].partition(" ")
        expected = {ATTR_ERROR_TYPE: error_type, ATTR_MCP_METHOD_NAME: method}
        if code is not None:
            expected[ATTR_ERROR_CODE] = code
        if tool:
            expected[ATTR_GEN_AI_TOOL_NAME] = tool
        assert any(expected.items() <= p.items() and p.get(ATTR_ERROR_CODE) == code for p in durations), what
        counted = {ATTR_ERROR_TYPE: error_type, ATTR_OPERATION: span["name"]}
        assert any(counted.items() <= p.items() and p.get(ATTR_ERROR_CODE) == code for p in errors), what
    unknown = next(span for what, span, *_ in _failures(run) if what == "unknown method")
    assert unknown["name"] == OTHER_VALUE  # a method outside the specification names no span or series
    assert all(p[ATTR_MCP_METHOD_NAME] != UNKNOWN_METHOD for p in durations)


def test_a_raising_tool_is_one_span_with_one_exception_event(run: Run) -> None:
    if run.case.raising_tool is None:
        assert run.server == "cde-otel-mcp"  # its tools answer every error as coded JSON, none raises
        return
    [raised] = [span for what, span, *_ in _failures(run) if what == "raise"]
    assert raised["name"] == f"tools/call {run.case.raising_tool}"  # registered, though not listed yet
    [event] = _exception_events(raised)
    # The framework wraps what the tool raised; the chain, scrubbed, is in the event.
    assert "LookupError: no feature no-such-feature" in event["exception.stacktrace"]


def test_the_session_is_measured_with_the_clients_name_and_version(run: Run, otlp_json_points: PointReader) -> None:
    client = {ATTR_MCP_CLIENT_NAME: DEFAULT_CLIENT_INFO.name, ATTR_MCP_CLIENT_VERSION: DEFAULT_CLIENT_INFO.version}
    for span in run.tree.servers():  # initialize included
        assert client.items() <= span["attrs"].items(), span["name"]
    sessions = otlp_json_points(run.local / "metrics.jsonl", METRIC_MCP_SERVER_SESSION_DURATION)
    assert sessions, "no session duration recorded"
    assert {int(p["count"]) for p in sessions} == {1}  # one session, in every export that holds it
    latest = sessions[-1]
    assert latest["attrs"] == {
        **client,
        ATTR_NETWORK_TRANSPORT: NETWORK_TRANSPORT_PIPE,
        ATTR_MCP_PROTOCOL_VERSION: run.tree.named("tools/list")[0]["attrs"][ATTR_MCP_PROTOCOL_VERSION],
    }
    assert float(latest["sum"]) > 0


def test_log_records_of_a_tool_call_are_in_its_trace_even_after_the_server_replaced_its_handlers(
    run: Run, otlp_json_logs: LogReader
) -> None:
    records = otlp_json_logs(run.local / "logs.jsonl")
    for record in [r for r in records if r["traceId"].strip("0")]:  # every record logged inside a request
        span = run.tree.by_id[record["spanId"]]
        assert span["traceId"] == record["traceId"]
        assert any(s.get("kind") == SERVER_KIND for s in [span, *run.tree.ancestors(span)]), record["body"]
    if run.server == "cde-otel-mcp":
        return  # our own server logs nothing of its own; the fixture servers do, as upstream's does
    # The fixture replaced its root handlers at start-up, after cde-otel (upstream's configure_logging),
    # then logs from inside its tools: each record reaches OTel logs once, in its tool call's trace.
    [start] = _tool_spans(run.tree, "cde_startFeature")
    [started] = [r for r in records if r["body"] == f"Started feature {run.feature_id}"]
    assert started["scope"] == "cde_orchestrator.server" and started["traceId"] == start["traceId"]
    [submit] = [s for s in _tool_spans(run.tree, "cde_submitWork") if ATTR_ERROR_TYPE not in s["attrs"]]
    [moved] = [r for r in records if r["body"] == f"Feature {run.feature_id} moved to decompose"]
    assert moved["traceId"] == submit["traceId"] == run.client_trace_id
    assert moved["attrs"][LOG_FIELDS[ATTR_CORRELATION_ID]] == CORRELATION
    # What the server prints keeps its own format.
    stderr = (run.local.parent / "server.stderr").read_text().splitlines()
    assert any(line.endswith(f"cde_orchestrator.server INFO Started feature {run.feature_id}") for line in stderr)


def test_the_server_says_once_on_stderr_that_telemetry_is_on_and_where_it_goes(run: Run) -> None:
    stderr = (run.local.parent / "server.stderr").read_text()
    [line] = [line for line in stderr.splitlines() if "cde-otel: telemetry on" in line]
    assert f"local OTLP-JSON files in {run.local};" in line and "MCP requests" in line


def test_active_features_gauge_follows_the_saved_state_of_a_server_that_keeps_no_objects(
    tmp_path: Path,
    orchestrator_server: ServerCommand,
    run_session: Callable[..., Any],
    clean_env: EnvFactory,
    otlp_json_points: PointReader,
) -> None:
    """The orchestrator fixture loads, changes, saves and drops the project in every tool call (as
    upstream does): the gauge still reads the active features of the state it saved."""
    project = tmp_path / "project"
    project.mkdir()
    local = tmp_path / "telemetry"
    command, args, env = _server(CASES[1], local, orchestrator_server, clean_env)
    assert CASES[1].venv == "fastmcp_2_13"
    metrics = local / "metrics.jsonl"

    async def gauge_reads(expected: int) -> None:
        deadline = time.monotonic() + 30
        latest = None
        while time.monotonic() < deadline:
            points = otlp_json_points(metrics, METRIC_FEATURES_ACTIVE)
            latest = int(points[-1]["asInt"]) if points else None
            if latest == expected:
                return
            await anyio.sleep(0.1)
        raise AssertionError(f"{METRIC_FEATURES_ACTIVE} reads {latest}, not {expected}, after 30 s")

    async def scenario(session: Any) -> None:
        started = await session.call_tool("cde_startFeature", CASES[1].start(str(project)))
        feature_id = json.loads(started.content[0].text)["feature_id"]
        await gauge_reads(1)
        for phase in ("define", "decompose", "design", "implement", "test", "review"):  # review completes it
            done = await session.call_tool("cde_submitWork", CASES[1].submit(feature_id, phase, str(project)))
            assert '"error"' not in done.content[0].text, done.content
        await gauge_reads(0)

    run_session(command, args, env, tmp_path, scenario)


def test_cde_otel_mcp_records_nothing_without_the_switch(
    tmp_path: Path, run_session: Callable[..., Any], clean_env: EnvFactory
) -> None:
    """`cde-otel mcp` follows the one switch like every process: not set, no telemetry, no files, no line."""
    project = tmp_path / "project"
    project.mkdir()
    state = tmp_path / "state"
    env = clean_env(XDG_STATE_HOME=str(state))
    env.pop("PYTHONPATH", None)

    async def scenario(session: Any) -> None:
        started = await session.call_tool("cde_startFeature", CASES[0].start(str(project)))
        assert not started.is_error, started.content

    run_session(str(Path(sys.executable).with_name("cde-otel")), ["mcp"], env, tmp_path, scenario)
    assert not state.exists()
    assert "cde-otel: telemetry on" not in (tmp_path / "server.stderr").read_text()
    assert (project / ".cde" / "state.json").exists()  # the tool itself worked
