"""The MCP conventions in detail, in-process: bounded names, capped values, the phase, sessions, cancellation.

The real servers of every framework are in test_mcp_servers.py; here MCPTelemetry is driven
directly (the outcome and bounding rules) and the official SDK 2.x's MCPServer through its
in-memory client (what its hooks see).
"""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.session import DEFAULT_CLIENT_INFO, ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from opentelemetry.trace import StatusCode

from cde_otel.instrumentation.mcp import MCPInstrumentor
from cde_otel.instrumentation.mcp._attributes import MAX_KNOWN_NAMES, KnownNames
from cde_otel.instrumentation.mcp._telemetry import MCPTelemetry
from cde_otel.semconv import (
    ATTR_CLIENT_ADDRESS,
    ATTR_CLIENT_PORT,
    ATTR_ERROR_TYPE,
    ATTR_FEATURE_PHASE,
    ATTR_GEN_AI_TOOL_NAME,
    ATTR_JSONRPC_REQUEST_ID,
    ATTR_MCP_CLIENT_NAME,
    ATTR_MCP_CLIENT_VERSION,
    ATTR_MCP_METHOD_NAME,
    ATTR_MCP_PROTOCOL_VERSION,
    ATTR_MCP_SESSION_ID,
    ATTR_NETWORK_PROTOCOL_NAME,
    ATTR_NETWORK_PROTOCOL_VERSION,
    ATTR_NETWORK_TRANSPORT,
    ATTR_OPERATION,
    INVALID_PHASE,
    METRIC_MCP_SERVER_OPERATION_DURATION,
    METRIC_MCP_SERVER_SESSION_DURATION,
    NETWORK_PROTOCOL_HTTP,
    NETWORK_TRANSPORT_TCP,
    OTHER_VALUE,
)
from cde_otel.settings import load_settings
from cde_otel.testing import CapturedTelemetry, capture_telemetry

HUGE = "x" * 100_000
EnvFactory = Callable[..., dict[str, str]]


@pytest.fixture
def mcp(telemetry: CapturedTelemetry) -> MCPTelemetry:
    meter = telemetry.meter_provider.get_meter("t")
    return MCPTelemetry(
        telemetry.tracer_provider.get_tracer("t"),
        meter.create_histogram(METRIC_MCP_SERVER_OPERATION_DURATION),
        meter.create_counter("cde.errors"),
        session_duration=meter.create_histogram(METRIC_MCP_SERVER_SESSION_DURATION),
    )


def _failed(mcp: MCPTelemetry, method: str, params: dict[str, Any] | None, **kwargs: Any) -> None:
    call = mcp.begin(method, params, **kwargs)
    call.result = {"content": [{"type": "text", "text": "no"}], "isError": True}
    mcp.end(call)


def test_an_unregistered_tool_is_other_on_metrics_and_absent_from_the_span_name(
    mcp: MCPTelemetry, telemetry: CapturedTelemetry
) -> None:
    mcp.known.learn_listed("tools/list", {"tools": [{"name": "cde_submitWork"}]})  # what the server listed
    _failed(mcp, "tools/call", {"name": "cde_submitWork"})
    _failed(mcp, "tools/call", {"name": "made-up" + HUGE})
    [registered, unknown] = telemetry.spans()
    assert registered.name == "tools/call cde_submitWork"
    assert unknown.name == "tools/call"  # the conventions' form when no low-cardinality target exists
    assert unknown.attributes[ATTR_GEN_AI_TOOL_NAME] == ("made-up" + HUGE)[:256]  # the span keeps it, capped
    tools = {p.attributes[ATTR_GEN_AI_TOOL_NAME] for p in telemetry.points(METRIC_MCP_SERVER_OPERATION_DURATION)}
    assert tools == {"cde_submitWork", OTHER_VALUE}
    assert {p.attributes[ATTR_OPERATION] for p in telemetry.points("cde.errors")} == {
        "tools/call cde_submitWork",
        "tools/call",
    }


def test_a_method_outside_the_specification_is_other(mcp: MCPTelemetry, telemetry: CapturedTelemetry) -> None:
    for i in range(50):
        call = mcp.begin(f"evil/{i}{HUGE}", None, request_id=HUGE)
        call.result = type("ErrorData", (), {"code": -32601, "message": "Method not found"})()
        mcp.end(call)
    spans = telemetry.spans()
    assert {s.name for s in spans} == {OTHER_VALUE}
    assert all(len(str(s.attributes[ATTR_MCP_METHOD_NAME])) == 256 for s in spans)
    assert all(len(str(s.attributes[ATTR_JSONRPC_REQUEST_ID])) == 256 for s in spans)
    [point] = telemetry.points(METRIC_MCP_SERVER_OPERATION_DURATION)  # one series for all fifty
    assert point.attributes[ATTR_MCP_METHOD_NAME] == OTHER_VALUE and point.count == 50
    assert point.attributes[ATTR_ERROR_TYPE] == "-32601"


def test_known_names_have_a_hard_cap() -> None:
    known = KnownNames()
    known.learn_listed("tools/list", {"tools": [{"name": f"t{i}"} for i in range(MAX_KNOWN_NAMES * 3)]})
    known.learn("tools/call", ["one-more"])
    assert known.knows("tools/call", "t0") and not known.knows("tools/call", "one-more")
    assert not known.knows("tools/call", f"t{MAX_KNOWN_NAMES}")


def test_a_success_proves_a_name_registered_a_failure_does_not(mcp: MCPTelemetry, telemetry: CapturedTelemetry) -> None:
    call = mcp.begin("prompts/get", {"name": "review"})
    call.result = {"messages": []}
    mcp.end(call)
    _failed(mcp, "tools/call", {"name": "guessed"})
    _failed(mcp, "tools/call", {"name": "guessed"})
    assert [s.name for s in telemetry.spans()] == ["prompts/get review", "tools/call", "tools/call"]


def test_an_invalid_requested_phase_is_recorded_as_invalid(mcp: MCPTelemetry, telemetry: CapturedTelemetry) -> None:
    for phase in ("design", "ship-it\x1b[31m" + HUGE, 7):
        mcp.end(mcp.begin("tools/call", {"name": "cde_submitWork", "arguments": {"phase": phase}}))
    phases = [s.attributes[ATTR_FEATURE_PHASE] for s in telemetry.spans()]
    assert phases == ["design", INVALID_PHASE, INVALID_PHASE]


def test_the_session_gives_every_span_the_client_and_is_recorded_once_closed(
    mcp: MCPTelemetry, telemetry: CapturedTelemetry
) -> None:
    session = type("Connection", (), {})()  # the framework's per-connection object
    peer = {
        ATTR_NETWORK_PROTOCOL_NAME: NETWORK_PROTOCOL_HTTP,
        ATTR_NETWORK_PROTOCOL_VERSION: "1.1",
        ATTR_CLIENT_ADDRESS: "127.0.0.1",
        ATTR_CLIENT_PORT: 51234,
    }
    common = {"transport": NETWORK_TRANSPORT_TCP, "session": session, "peer": peer, "session_id": "s-1"}
    init = mcp.begin("initialize", None, client_info={"name": "claude-code", "version": "2.1.0"}, **common)
    mcp.end(init)
    mcp.end(mcp.begin("tools/list", None, protocol_version="2025-11-25", **common))
    assert telemetry.points(METRIC_MCP_SERVER_SESSION_DURATION) == []  # open still
    mcp.sessions.close(session)
    for span in telemetry.spans():
        assert span.attributes[ATTR_MCP_CLIENT_NAME] == "claude-code", span.name
        assert span.attributes[ATTR_MCP_CLIENT_VERSION] == "2.1.0", span.name
        assert span.attributes[ATTR_MCP_SESSION_ID] == "s-1", span.name
        assert span.attributes[ATTR_CLIENT_ADDRESS] == "127.0.0.1" and span.attributes[ATTR_CLIENT_PORT] == 51234
    [point] = telemetry.points(METRIC_MCP_SERVER_SESSION_DURATION)
    assert point.count == 1
    assert dict(point.attributes) == {
        ATTR_NETWORK_TRANSPORT: NETWORK_TRANSPORT_TCP,
        ATTR_NETWORK_PROTOCOL_NAME: NETWORK_PROTOCOL_HTTP,
        ATTR_NETWORK_PROTOCOL_VERSION: "1.1",
        ATTR_MCP_PROTOCOL_VERSION: "2025-11-25",
        ATTR_MCP_CLIENT_NAME: "claude-code",
        ATTR_MCP_CLIENT_VERSION: "2.1.0",
    }  # never the address, port or session id: per-connection values


def test_protocol_versions_a_client_makes_up_stay_bounded_in_series_and_in_what_is_kept(
    mcp: MCPTelemetry, telemetry: CapturedTelemetry
) -> None:
    versions = [f"2025-01-{i:02d}" for i in range(1, 29)] + [f"v{i}" for i in range(100)] + [HUGE]
    for version in versions:
        mcp.end(mcp.begin("ping", None, transport="pipe", protocol_version=version))
    seen = {p.attributes[ATTR_MCP_PROTOCOL_VERSION] for p in telemetry.points(METRIC_MCP_SERVER_OPERATION_DURATION)}
    assert OTHER_VALUE in seen and len(seen) <= 17  # the first 16 dates, then _OTHER
    assert len(mcp._shared_transport_attrs) <= 64  # reused attribute sets: bounded, never the huge one
    assert all(version is None or len(version) <= 32 for _, version in mcp._shared_transport_attrs)
    spans = telemetry.spans()
    assert spans[0].attributes[ATTR_MCP_PROTOCOL_VERSION] == "2025-01-01"
    assert spans[-1].attributes[ATTR_MCP_PROTOCOL_VERSION] == OTHER_VALUE


def test_requests_that_share_transport_attributes_never_share_their_own(
    mcp: MCPTelemetry, telemetry: CapturedTelemetry
) -> None:
    first = mcp.begin("tools/list", None, transport="pipe", protocol_version="2025-11-25")
    first.attrs["added.later"] = "x"
    first.metric_attrs["added.later"] = "x"
    mcp.end(first)
    mcp.end(mcp.begin("tools/list", None, transport="pipe", protocol_version="2025-11-25"))
    _, second = telemetry.spans()
    assert "added.later" not in second.attributes
    assert second.attributes[ATTR_NETWORK_TRANSPORT] == "pipe"
    assert second.attributes[ATTR_MCP_PROTOCOL_VERSION] == "2025-11-25"


def test_a_session_follows_the_client_description_each_request_brings(
    mcp: MCPTelemetry, telemetry: CapturedTelemetry
) -> None:
    session = type("Connection", (), {})()
    info = {"name": "claude-code", "version": "2.1.0"}
    mcp.end(mcp.begin("initialize", None, session=session, client_info=info))
    mcp.end(mcp.begin("tools/list", None, session=session, client_info=info))  # the same object: nothing new
    mcp.end(mcp.begin("tools/list", None, session=session, client_info={"name": "cursor", "version": "1.7"}))
    mcp.end(mcp.begin("tools/list", None, session=session))  # none given: the session's own stays
    names = [(s.attributes[ATTR_MCP_CLIENT_NAME], s.attributes[ATTR_MCP_CLIENT_VERSION]) for s in telemetry.spans()]
    assert names == [("claude-code", "2.1.0")] * 2 + [("cursor", "1.7")] * 2


def test_a_session_keeps_no_client_description_a_request_sent_once_the_request_is_over(
    mcp: MCPTelemetry, telemetry: CapturedTelemetry
) -> None:
    class Sent(dict[str, str]):  # a dict a weak reference can watch
        pass

    session = type("Connection", (), {})()
    mcp.end(mcp.begin("initialize", None, session=session))
    meta: dict[str, Any] = {"io.modelcontextprotocol/clientInfo": Sent(name="cursor", version="1.7")}
    sent = weakref.ref(meta["io.modelcontextprotocol/clientInfo"])
    mcp.end(mcp.begin("tools/list", {"_meta": meta}, meta=meta, session=session))
    del meta
    gc.collect()
    assert sent() is None  # the client's bytes went with its request
    mcp.end(mcp.begin("tools/list", None, session=session))
    assert telemetry.spans()[-1].attributes[ATTR_MCP_CLIENT_NAME] == "cursor"  # what it said stays


def test_a_tool_registered_while_its_first_call_runs_names_the_span_and_the_metric(
    mcp: MCPTelemetry, telemetry: CapturedTelemetry
) -> None:
    call = mcp.begin("tools/call", {"name": "cde_submitWork"})
    assert not call.known  # unregistered when the call began: the bare method so far
    call.result = {"content": [{"type": "text", "text": "{}"}], "isError": False}  # a registered tool answered
    mcp.end(call)
    mcp.end(mcp.begin("tools/call", {"name": "cde_submitWork"}))  # known from the start now
    assert [s.name for s in telemetry.spans()] == ["tools/call cde_submitWork"] * 2
    [point] = telemetry.points(METRIC_MCP_SERVER_OPERATION_DURATION)
    assert point.attributes[ATTR_GEN_AI_TOOL_NAME] == "cde_submitWork" and point.count == 2


def test_client_names_on_the_session_metric_are_bounded(mcp: MCPTelemetry, telemetry: CapturedTelemetry) -> None:
    for i in range(100):
        session = type("Connection", (), {})()
        mcp.end(mcp.begin("initialize", None, session=session, client_info={"name": f"agent-{i}", "version": HUGE}))
        mcp.sessions.close(session)
    names = {p.attributes[ATTR_MCP_CLIENT_NAME] for p in telemetry.points(METRIC_MCP_SERVER_SESSION_DURATION)}
    assert OTHER_VALUE in names and len(names) <= 33
    assert all(
        len(p.attributes[ATTR_MCP_CLIENT_VERSION]) <= 64 for p in telemetry.points(METRIC_MCP_SERVER_SESSION_DURATION)
    )


def test_the_client_named_in_each_requests_meta_is_on_its_span(mcp: MCPTelemetry, telemetry: CapturedTelemetry) -> None:
    meta = {"io.modelcontextprotocol/clientInfo": {"name": "cursor", "version": "1.7"}}
    mcp.end(mcp.begin("tools/list", {"_meta": meta}, meta=meta))
    [span] = telemetry.spans()
    assert (span.attributes[ATTR_MCP_CLIENT_NAME], span.attributes[ATTR_MCP_CLIENT_VERSION]) == ("cursor", "1.7")


def test_a_cancelled_request_is_not_an_error(mcp: MCPTelemetry, telemetry: CapturedTelemetry) -> None:
    call = mcp.begin("tools/call", {"name": "slow"})
    call.exception = asyncio.CancelledError()
    mcp.end(call)
    [span] = telemetry.spans()
    assert span.status.status_code is StatusCode.UNSET and ATTR_ERROR_TYPE not in span.attributes
    assert telemetry.points("cde.errors") == []


@pytest.fixture
def instrumented(global_telemetry: CapturedTelemetry) -> Iterator[CapturedTelemetry]:
    global_telemetry.span_exporter.clear()
    metrics = capture_telemetry()
    MCPInstrumentor().instrument(
        tracer_provider=global_telemetry.tracer_provider,
        meter_provider=metrics.meter_provider,
        settings=load_settings({}),
    )
    try:
        yield metrics
    finally:
        MCPInstrumentor().uninstrument()
        metrics.shutdown()


def test_a_request_the_client_cancels_is_not_an_error_on_a_real_server(
    instrumented: CapturedTelemetry, global_telemetry: CapturedTelemetry
) -> None:
    app = MCPServer("cancel")
    entered = anyio.Event()

    @app.tool()
    async def slow() -> str:
        entered.set()
        await anyio.sleep(60)
        return "late"

    async def main() -> None:
        async with Client(app) as client, anyio.create_task_group() as group:
            group.start_soon(client.call_tool, "slow", {})
            with anyio.fail_after(30):
                await entered.wait()
            group.cancel_scope.cancel()  # the client gives up: it sends notifications/cancelled

    anyio.run(main)
    [span] = [s for s in global_telemetry.spans() if s.attributes.get(ATTR_GEN_AI_TOOL_NAME) == "slow"]
    assert span.status.status_code is not StatusCode.ERROR and ATTR_ERROR_TYPE not in span.attributes
    assert instrumented.points("cde.errors") == []


# -- over streamable HTTP: a real server process, the official client ---------------------------
_HTTP_SERVER = """
import sys
from cde_otel import telemetry
telemetry.configure()
if sys.argv[1] == "fastmcp":
    from fastmcp import FastMCP
    app = FastMCP("http")
    run = lambda: app.run("http", host="127.0.0.1", port=int(sys.argv[2]))
else:
    from mcp.server.mcpserver import MCPServer
    app = MCPServer("http")
    run = lambda: app.run("streamable-http", port=int(sys.argv[2]))

@app.tool()
async def hello(name: str) -> str:
    return "hi " + name

run()
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.parametrize("framework", ["mcp-sdk-2", "fastmcp-2.13"])
def test_over_http_every_span_has_the_session_the_peer_and_the_protocol(
    framework: str,
    tmp_path: Path,
    clean_env: EnvFactory,
    venv_python: Callable[[str], Path],
    otlp_json_spans: Callable[[Path], Iterator[dict[str, Any]]],
) -> None:
    python = str(venv_python("fastmcp_2_13")) if framework == "fastmcp-2.13" else sys.executable
    port = _free_port()
    local = tmp_path / "telemetry"
    env = clean_env(CDE_OTEL_ENABLED="true", CDE_OTEL_LOCAL_DIR=str(local), OTEL_BSP_SCHEDULE_DELAY="100")
    env.pop("PYTHONPATH", None)
    kind = "fastmcp" if framework == "fastmcp-2.13" else "sdk"
    with (tmp_path / "server.stderr").open("w") as errlog:
        server = subprocess.Popen([python, "-c", _HTTP_SERVER, kind, str(port)], env=env, stderr=errlog)
    try:
        _wait_for_port(port, server)

        async def main() -> str:
            url = f"http://127.0.0.1:{port}/mcp"
            async with streamable_http_client(url) as (read, write, *_), ClientSession(read, write) as session:
                await session.initialize()
                await session.list_tools()
                return str((await session.call_tool("hello", {"name": "x"})).content[0].text)

        assert anyio.run(main) == "hi x"
        servers = _poll_spans(otlp_json_spans, local / "traces.jsonl", {"initialize", "tools/list", "tools/call"})
    finally:
        server.terminate()
        server.wait(30)
    assert "tools/call hello" in {s["name"] for s in servers}  # a registered tool names its span
    session_ids = {s["attrs"].get(ATTR_MCP_SESSION_ID) for s in servers}
    assert len(session_ids) == 1 and None not in session_ids  # initialize included
    for span in servers:
        attrs = span["attrs"]
        assert attrs[ATTR_NETWORK_TRANSPORT] == NETWORK_TRANSPORT_TCP, span["name"]
        assert (attrs[ATTR_NETWORK_PROTOCOL_NAME], attrs[ATTR_NETWORK_PROTOCOL_VERSION]) == ("http", "1.1")
        assert attrs[ATTR_CLIENT_ADDRESS] == "127.0.0.1" and int(attrs[ATTR_CLIENT_PORT]) > 0, span["name"]
        assert attrs[ATTR_MCP_CLIENT_NAME] == DEFAULT_CLIENT_INFO.name, span["name"]


def _wait_for_port(port: int, server: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, "the HTTP server exited"
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port} after {timeout}s")


def _poll_spans(
    read: Callable[[Path], Iterator[dict[str, Any]]], path: Path, methods: set[str], timeout: float = 30.0
) -> list[dict[str, Any]]:
    """The server spans in ``path`` once one of each of ``methods`` is there (polled with a deadline)."""
    deadline = time.monotonic() + timeout
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            found = [s for s in read(path) if s.get("kind") == 2] if path.exists() else []
        except json.JSONDecodeError:
            found = []  # a line still being written
        if methods <= {s["attrs"].get(ATTR_MCP_METHOD_NAME) for s in found}:
            return found
        time.sleep(0.05)
    raise AssertionError(f"not every one of {methods} in {path} after {timeout}s: {[s['name'] for s in found]}")
