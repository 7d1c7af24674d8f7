"""MCPInstrumentor in-process on the official SDK 2.x (MCPServer + the in-memory client), and its outcome rules.

The SDK 2.x opens the SERVER span itself (through the global tracer provider): the instrumentation
must enrich that span, not add one. The other families (mcp 1.x, fastmcp) run in
test_mcp_servers.py, from their own venvs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import anyio
import pytest
import wrapt
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, ListToolsResult, RequestParamsMeta, TextContent, Tool
from opentelemetry.trace import SpanKind, StatusCode

from cde_otel._swallowed import swallowed_counts
from cde_otel.core import FileSystemProjectRepository
from cde_otel.errors import ErrorFormatter, error_for
from cde_otel.instrumentation import CDEInstrumentor
from cde_otel.instrumentation.mcp import MCPInstrumentor
from cde_otel.instrumentation.mcp._errors import Failure, failure_of
from cde_otel.instrumentation.mcp._telemetry import MCPTelemetry
from cde_otel.semconv import (
    ATTR_CORRELATION_ID,
    ATTR_ERROR_CODE,
    ATTR_ERROR_TYPE,
    ATTR_FEATURE_ID,
    ATTR_FEATURE_PHASE,
    ATTR_GEN_AI_OPERATION_NAME,
    ATTR_GEN_AI_TOOL_CALL_ARGUMENTS,
    ATTR_GEN_AI_TOOL_CALL_RESULT,
    ATTR_GEN_AI_TOOL_NAME,
    ATTR_INSTRUMENTATION_SITE,
    ATTR_JSONRPC_REQUEST_ID,
    ATTR_MCP_METHOD_NAME,
    ATTR_MCP_RESOURCE_URI,
    ATTR_NETWORK_TRANSPORT,
    ATTR_OPERATION,
    ATTR_PROJECT_PATH,
    ATTR_PROMPT_LENGTH,
    CORRELATION_KEY,
    EXECUTE_TOOL,
    METRIC_ERRORS,
    METRIC_INSTRUMENTATION_FAILURES,
    METRIC_MCP_SERVER_OPERATION_DURATION,
    NETWORK_TRANSPORT_TCP,
    SCOPE_NAME,
)
from cde_otel.settings import load_settings
from cde_otel.telemetry._histograms import duration_views
from cde_otel.testing import CapturedTelemetry, capture_telemetry

SECRET_PROMPT = "Add OAuth login; the staging api_key=k-12345 must not leak"
EnvFactory = Callable[..., dict[str, str]]


class Harness:
    """Spans from the global provider (the SDK's own server span goes there), metrics from a fresh one."""

    def __init__(self, traces: CapturedTelemetry, metrics: CapturedTelemetry) -> None:
        self.traces = traces
        self.metrics = metrics

    def points(self, name: str) -> list[Any]:
        return self.metrics.points(name)

    def servers(self) -> list[Any]:
        return [s for s in self.traces.spans() if s.kind is SpanKind.SERVER]

    def tool_span(self, tool: str) -> Any:
        [span] = [s for s in self.servers() if s.attributes.get(ATTR_GEN_AI_TOOL_NAME) == tool]
        return span

    def inside(self, server: Any) -> list[Any]:
        return [s for s in self.traces.spans() if s.context.trace_id == server.context.trace_id and s is not server]


def _instrument(traces: CapturedTelemetry, harness_settings: dict[str, str] | None = None) -> Iterator[Harness]:
    traces.span_exporter.clear()
    metrics = capture_telemetry()
    settings = load_settings(harness_settings or {})
    CDEInstrumentor().instrument(
        tracer_provider=traces.tracer_provider, meter_provider=metrics.meter_provider, log_operations=False
    )
    MCPInstrumentor().instrument(
        tracer_provider=traces.tracer_provider, meter_provider=metrics.meter_provider, settings=settings
    )
    try:
        yield Harness(traces, metrics)
    finally:
        MCPInstrumentor().uninstrument()
        CDEInstrumentor().uninstrument()
        metrics.shutdown()


@pytest.fixture
def harness(global_telemetry: CapturedTelemetry) -> Iterator[Harness]:
    yield from _instrument(global_telemetry)


def _server(tmp_path: Path) -> MCPServer:
    repo = FileSystemProjectRepository()
    app = MCPServer("test")

    @app.tool()
    async def start(project_path: str, user_prompt: str, api_token: str = "") -> str:
        project = repo.get_or_create(project_path)
        project.activate()
        feature = project.start_feature(user_prompt)
        repo.save(project)
        return json.dumps({"feature_id": feature.id})

    @app.tool()
    async def submit(project_path: str, feature_id: str, phase: str) -> CallToolResult:
        project = repo.get_or_create(project_path)
        try:
            project.get_feature(feature_id).advance_phase(phase)
            repo.save(project)
        except Exception as exc:
            return CallToolResult(
                content=[TextContent(type="text", text=ErrorFormatter.format_json(exc))], is_error=True
            )
        return CallToolResult(content=[TextContent(type="text", text="ok")])

    @app.tool()
    async def crash(project_path: str) -> str:
        raise error_for("E210", path=project_path)  # an unhandled coded error inside the tool

    @app.tool()
    async def boom() -> str:
        raise ValueError("not a CDE error")

    return app


def _call(app: MCPServer, *calls: tuple[str, dict[str, Any]], meta: dict[str, Any] | None = None) -> list[Any]:
    async def main() -> list[Any]:
        async with Client(app) as client:
            # RequestParamsMeta is an open TypedDict (PEP 728 extra_items), which mypy does not read yet.
            wire_meta = cast("RequestParamsMeta | None", meta)
            return [await client.call_tool(name, args, meta=wire_meta) for name, args in calls]

    return anyio.run(main)


def test_a_tool_call_is_one_trace_under_the_sdks_own_span(harness: Harness, tmp_path: Path) -> None:
    app = _server(tmp_path)
    [started] = _call(app, ("start", {"project_path": str(tmp_path), "user_prompt": SECRET_PROMPT}))
    feature_id = json.loads(started.content[0].text)["feature_id"]
    _call(app, ("submit", {"project_path": str(tmp_path), "feature_id": feature_id, "phase": "decompose"}))

    start, submit = harness.tool_span("start"), harness.tool_span("submit")
    for span, tool in ((start, "start"), (submit, "submit")):
        assert span.name == f"tools/call {tool}"
        assert span.instrumentation_scope.name == "mcp-python-sdk"  # enriched, not duplicated
        assert span.attributes[ATTR_GEN_AI_OPERATION_NAME] == EXECUTE_TOOL
        assert span.attributes[ATTR_PROJECT_PATH] == str(tmp_path)
    assert len([s for s in harness.servers() if s.attributes.get(ATTR_MCP_METHOD_NAME) == "tools/call"]) == 2
    assert start.context.trace_id != submit.context.trace_id
    assert start.attributes[ATTR_FEATURE_ID] == feature_id  # from the result
    assert submit.attributes[ATTR_FEATURE_ID] == feature_id and submit.attributes[ATTR_FEATURE_PHASE] == "decompose"
    nested = harness.inside(submit)
    assert {"Feature.advance_phase", "FileSystemProjectRepository.save"} <= {s.name for s in nested}
    cid = submit.attributes[ATTR_CORRELATION_ID]
    assert cid == f"{submit.context.trace_id:032x}"
    assert {s.attributes[ATTR_CORRELATION_ID] for s in nested} == {cid}
    [point] = [
        p
        for p in harness.points(METRIC_MCP_SERVER_OPERATION_DURATION)
        if p.attributes.get(ATTR_GEN_AI_TOOL_NAME) == "submit"
    ]
    assert point.count == 1 and point.scale > 0  # the exponential view


def test_prompt_text_is_never_recorded_only_its_length(harness: Harness, tmp_path: Path) -> None:
    _call(_server(tmp_path), ("start", {"project_path": str(tmp_path), "user_prompt": SECRET_PROMPT}))
    span = harness.tool_span("start")
    assert span.attributes[ATTR_PROMPT_LENGTH] == len(SECRET_PROMPT)
    recorded = json.dumps([dict(s.attributes or {}) for s in harness.traces.spans()])
    assert "OAuth" not in recorded and "k-12345" not in recorded


def test_content_capture_records_redacted_arguments(global_telemetry: CapturedTelemetry, tmp_path: Path) -> None:
    settings = {"CDE_OTEL_CAPTURE_CONTENT": "true", "CDE_OTEL_CAPTURE_MAX_LENGTH": "20"}
    for harness in _instrument(global_telemetry, settings):
        args = {"project_path": str(tmp_path), "user_prompt": SECRET_PROMPT, "api_token": "t-98765"}
        _call(_server(tmp_path), ("start", args))
        captured = json.loads(harness.tool_span("start").attributes[ATTR_GEN_AI_TOOL_CALL_ARGUMENTS])
        assert captured == {"project_path": str(tmp_path), "user_prompt": SECRET_PROMPT[:20], "api_token": "[REDACTED]"}


def test_client_correlation_id_in_meta_reaches_every_span(harness: Harness, tmp_path: Path) -> None:
    _call(
        _server(tmp_path),
        ("start", {"project_path": str(tmp_path), "user_prompt": "Add login"}),
        meta={CORRELATION_KEY: "agent-run-42"},
    )
    span = harness.tool_span("start")
    assert {s.attributes[ATTR_CORRELATION_ID] for s in [span, *harness.inside(span)]} == {"agent-run-42"}


def test_failed_calls_are_errors_with_their_code_and_counted(harness: Harness, tmp_path: Path) -> None:
    _call(
        _server(tmp_path),
        ("submit", {"project_path": str(tmp_path), "feature_id": "nope", "phase": "decompose"}),
        ("crash", {"project_path": str(tmp_path)}),
        ("boom", {}),
    )
    # Every one is an isError result (the SDK turns a raise into one): the conventions' tool_error,
    # the CDE code beside it; one exception event for the two that raised.
    expected = {"submit": ("E104", 0), "crash": ("E210", 1), "boom": (None, 1)}
    for tool, (code, exceptions) in expected.items():
        span = harness.tool_span(tool)
        assert span.status.status_code is StatusCode.ERROR, tool
        assert span.attributes[ATTR_ERROR_TYPE] == "tool_error", tool
        assert span.attributes.get(ATTR_ERROR_CODE) == code, tool
        assert len([e for e in span.events if e.name == "exception"]) == exceptions, tool
    errors = {
        (p.attributes[ATTR_ERROR_TYPE], p.attributes.get(ATTR_ERROR_CODE), p.attributes[ATTR_OPERATION]): p.value
        for p in harness.points(METRIC_ERRORS)
    }
    assert {("tool_error", code, f"tools/call {tool}") for tool, (code, _) in expected.items()} <= set(errors)
    failed = {
        (p.attributes.get(ATTR_ERROR_TYPE), p.attributes.get(ATTR_ERROR_CODE))
        for p in harness.points(METRIC_MCP_SERVER_OPERATION_DURATION)
    }
    assert {("tool_error", code) for code, _ in expected.values()} <= failed


def test_a_failing_instrumentation_never_reaches_the_server(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("telemetry bug")

    before = swallowed_counts()
    monkeypatch.setattr(MCPTelemetry, "begin", broken)
    [ok] = _call(_server(tmp_path), ("start", {"project_path": str(tmp_path), "user_prompt": "Add login"}))
    assert not ok.is_error and "feature_id" in ok.content[0].text
    monkeypatch.undo()
    monkeypatch.setattr(MCPTelemetry, "settle", broken)
    monkeypatch.setattr(MCPTelemetry, "record", broken)
    [failed] = _call(
        _server(tmp_path), ("submit", {"project_path": str(tmp_path), "feature_id": "x", "phase": "design"})
    )
    assert failed.is_error and json.loads(failed.content[0].text)["code"] == "E104"
    after = swallowed_counts()
    for site in ("mcp.begin", "mcp.settle", "mcp.record"):  # swallowed, and counted
        assert after.get(site, 0) > before.get(site, 0), site
    points = harness.points(METRIC_INSTRUMENTATION_FAILURES)
    exported = {p.attributes[ATTR_INSTRUMENTATION_SITE]: p.value for p in points}
    assert exported["mcp.settle"] == after["mcp.settle"]


def test_uninstrument_restores_the_library_and_stops_recording(
    global_telemetry: CapturedTelemetry, tmp_path: Path
) -> None:
    instrumented = _instrument(global_telemetry)
    harness = next(instrumented)
    assert {t.spec for t in MCPInstrumentor().patched_targets} == {
        "mcp.server._otel:OpenTelemetryMiddleware.__call__",
        "mcp.server._otel:otel_span",
        "mcp.server.mcpserver.server:MCPServer.call_tool",
        "mcp.server.runner:aclose_shielded",
        "mcp.server.streamable_http:StreamableHTTPServerTransport.connect",
        "mcp.server.streamable_http:StreamableHTTPServerTransport._handle_post_request",
    }
    with pytest.raises(StopIteration):
        next(instrumented)  # uninstruments
    import mcp.server._otel as sdk_otel

    assert not isinstance(sdk_otel.OpenTelemetryMiddleware.__dict__["__call__"], wrapt.ObjectProxy)
    assert not isinstance(vars(sdk_otel)["otel_span"], wrapt.ObjectProxy)
    harness.traces.span_exporter.clear()
    _call(_server(tmp_path), ("start", {"project_path": str(tmp_path), "user_prompt": "Add login"}))
    span = harness.tool_span("start")
    assert not any(k.startswith("cde.") for k in span.attributes)  # the SDK's own span, untouched
    assert harness.points(METRIC_MCP_SERVER_OPERATION_DURATION) == []


def test_modules_imported_after_instrument_are_patched_too(clean_env: EnvFactory) -> None:
    code = (
        "import sys; from cde_otel.instrumentation.mcp import MCPInstrumentor\n"
        "MCPInstrumentor().instrument()\n"
        "assert 'mcp.server._otel' not in sys.modules\n"
        "import mcp.server.mcpserver\n"
        "print(sorted(t.spec for t in MCPInstrumentor().patched_targets))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=clean_env(), capture_output=True, text=True, timeout=120, check=True
    )
    assert "mcp.server._otel:otel_span" in done.stdout and "MCPServer.call_tool" in done.stdout


def test_entry_point_and_histogram_view() -> None:
    [entry] = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "cde_mcp"]
    assert entry.load() is MCPInstrumentor
    assert {v._instrument_name for v in duration_views("exponential", 750)} >= {METRIC_MCP_SERVER_OPERATION_DURATION}


# -- outcome rules, on the shapes each SDK generation hands over -------------------------------
def _result(text: str, is_error: bool, *, wire: bool = False, structured: Any = None) -> Any:
    if wire:  # mcp 2.x/FastMCP 3+: the serialized dict
        return {"content": [{"type": "text", "text": text}], "isError": is_error, "structuredContent": structured}
    root = SimpleNamespace(content=[SimpleNamespace(text=text)], isError=is_error, structuredContent=structured)
    return SimpleNamespace(root=root)  # mcp 1.x: ServerResult(root=CallToolResult)


@pytest.mark.parametrize("wire", [False, True])
def test_outcome_of_tool_results(wire: bool) -> None:
    coded = ErrorFormatter.format_json(error_for("E102", feature_id="f"))
    message = json.loads(coded)["message"]
    assert failure_of(_result(coded, True, wire=wire), None, True) == Failure("tool_error", message, "E102")
    assert failure_of(_result("plain failure", True, wire=wire), None, True) == Failure("tool_error", "plain failure")
    raised = failure_of(_result("plain failure", True, wire=wire), KeyError("k"), True)
    assert raised == Failure("tool_error", "'k'")  # the class is the exception event's
    upstream = json.dumps({"status": "error", "error_type": "FeatureNotFound", "error_code": "E104", "message": "m"})
    assert failure_of(_result(upstream, False, wire=wire), None, True) == Failure("tool_error", "m", "E104")
    assert failure_of(_result('{"status": "ok", "code": "E104"}', False, wire=wire), None, True) is None
    assert failure_of(_result(coded, True, wire=wire), None, False) is None  # not a tools/call


def test_outcome_of_protocol_errors_and_exceptions() -> None:
    error_data = SimpleNamespace(code=-32601, message="Method not found")
    assert failure_of(error_data, None, False) == Failure("-32601", "Method not found", None, "-32601")
    wrapped = RuntimeError("Error calling tool")
    wrapped.__cause__ = error_for("E207", path="/p")
    assert failure_of(None, wrapped, True) == Failure(
        type(wrapped.__cause__).__qualname__, "Error calling tool", "E207"
    )
    outer = RuntimeError("wrapper")
    outer.__cause__ = LookupError("inner")
    assert failure_of(None, outer, True) == Failure("LookupError", "wrapper")
    rpc = Exception("rpc")
    rpc.error = SimpleNamespace(code=-32602)  # type: ignore[attr-defined]
    assert failure_of(None, rpc, True) == Failure("-32602", "rpc", None, "-32602")


def test_the_low_level_server_gets_the_same_treatment(harness: Harness, tmp_path: Path) -> None:
    from mcp.server.lowlevel import Server

    repo = FileSystemProjectRepository()

    async def on_call_tool(ctx: Any, params: Any) -> CallToolResult:
        try:
            repo.get_or_create(params.arguments["project_path"]).get_feature(params.arguments["feature_id"])
        except Exception as exc:
            return CallToolResult(
                content=[TextContent(type="text", text=ErrorFormatter.format_json(exc))], is_error=True
            )
        return CallToolResult(content=[TextContent(type="text", text="ok")])

    async def on_list_tools(ctx: Any, params: Any) -> ListToolsResult:
        return ListToolsResult(tools=[Tool(name="status", input_schema={"type": "object"})])

    # No registry to read: the names it lists are the ones it registered.
    server = Server("low-level", on_call_tool=on_call_tool, on_list_tools=on_list_tools)

    async def main() -> Any:
        async with Client(server) as client:
            await client.list_tools()
            return await client.call_tool("status", {"project_path": str(tmp_path), "feature_id": "f"})

    assert anyio.run(main).is_error
    span = harness.tool_span("status")
    assert span.name == "tools/call status" and span.attributes[ATTR_ERROR_TYPE] == "tool_error"
    assert span.attributes[ATTR_ERROR_CODE] == "E104"
    assert {s.name for s in harness.inside(span)} >= {"FileSystemProjectRepository.get_or_create"}


def test_an_owned_span_is_the_clients_child_and_links_the_ambient_span(telemetry: CapturedTelemetry) -> None:
    meter = telemetry.meter_provider.get_meter("t")
    mcp = MCPTelemetry(
        telemetry.tracer_provider.get_tracer("t"), meter.create_histogram("h"), meter.create_counter("c")
    )
    client = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    mcp.known.learn("tools/call", ["cde_submitWork"])
    with telemetry.tracer_provider.get_tracer("http").start_as_current_span("POST /mcp") as ambient:
        call = mcp.begin(
            "tools/call",
            {"name": "cde_submitWork", "arguments": {}},
            request_id=7,
            meta={"traceparent": client, "baggage": "cde.correlation_id=run-1"},
            transport=NETWORK_TRANSPORT_TCP,
        )
        mcp.end(call)
    [span] = telemetry.spans("tools/call cde_submitWork")
    assert f"{span.context.trace_id:032x}" == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert span.parent is not None and f"{span.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert [link.context.span_id for link in span.links] == [ambient.get_span_context().span_id]
    assert span.attributes[ATTR_CORRELATION_ID] == "run-1"
    assert span.attributes[ATTR_NETWORK_TRANSPORT] == NETWORK_TRANSPORT_TCP
    assert span.attributes[ATTR_JSONRPC_REQUEST_ID] == "7"


@pytest.mark.parametrize(("disabled", "instrumented"), [("", True), ("cde_mcp", False), ("threading, cde_mcp", False)])
def test_configure_instruments_mcp_servers_unless_the_standard_opt_out_names_it(
    disabled: str, instrumented: bool, clean_env: EnvFactory, tmp_path: Path
) -> None:
    """``configure(environ=...)`` reads the opt-out from the environment it is given, like every other setting."""
    environ = {
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": disabled,
        "CDE_OTEL_LOCAL_DIR": str(tmp_path / "telemetry"),
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }
    code = (
        "from cde_otel import telemetry\n"
        "from cde_otel.instrumentation.mcp import MCPInstrumentor\n"
        f"telemetry.configure(environ={environ!r}, logging_setup=False)\n"
        "print(MCPInstrumentor().is_instrumented_by_opentelemetry)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=clean_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(instrumented)


def test_cde_errors_is_one_metric_family_for_operations_and_tool_calls(harness: Harness, tmp_path: Path) -> None:
    app = _server(tmp_path)
    [started] = _call(app, ("start", {"project_path": str(tmp_path), "user_prompt": "Add login"}))
    feature_id = json.loads(started.content[0].text)["feature_id"]
    # Skipping phases: Feature.advance_phase fails inside the tool, and so does the tool call.
    _call(app, ("submit", {"project_path": str(tmp_path), "feature_id": feature_id, "phase": "review"}))

    data = harness.metrics.metric_reader.get_metrics_data()
    assert data is not None
    scopes = {
        scope.scope.name
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == METRIC_ERRORS
    }
    assert scopes == {SCOPE_NAME}
    assert {p.attributes[ATTR_OPERATION] for p in harness.points(METRIC_ERRORS)} == {
        "Feature.advance_phase",
        "tools/call submit",
    }


def test_a_resource_uri_is_scrubbed_of_secrets(telemetry: CapturedTelemetry) -> None:
    meter = telemetry.meter_provider.get_meter("t")
    mcp = MCPTelemetry(
        telemetry.tracer_provider.get_tracer("t"), meter.create_histogram("h"), meter.create_counter("c")
    )
    mcp.end(mcp.begin("resources/read", {"uri": "cde://errors/E104?token=s3cr3t-value&lang=en"}))
    [span] = telemetry.spans("resources/read")
    assert span.attributes[ATTR_MCP_RESOURCE_URI] == "cde://errors/E104?token=[REDACTED]&lang=en"


def test_a_captured_result_is_scrubbed_before_it_is_truncated(telemetry: CapturedTelemetry) -> None:
    meter = telemetry.meter_provider.get_meter("t")
    mcp = MCPTelemetry(
        telemetry.tracer_provider.get_tracer("t"),
        meter.create_histogram("h"),
        meter.create_counter("c"),
        capture_content=True,
        capture_max_length=18,
    )
    call = mcp.begin("tools/call", {"name": "deploy", "arguments": {}})
    # Cut first, "Bearer 1234567" would no longer look like a credential (8+ characters) and leak.
    call.result = {"content": [{"type": "text", "text": "use Bearer 1234567890abcdefghij to deploy"}]}
    mcp.end(call)
    [span] = telemetry.spans("tools/call deploy")
    recorded = span.attributes[ATTR_GEN_AI_TOOL_CALL_RESULT]
    assert recorded == "use Bearer [REDACT"
    assert "1234" not in recorded
