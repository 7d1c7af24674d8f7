"""Real MCP servers over streamable HTTP, the official client: whose context is the parent, what is linked.

The rule (MCP semantic conventions): the trace context in ``params._meta`` is the parent when
present; else the HTTP request's (its server span when an HTTP instrumentation made one, else its
``traceparent`` header); when both exist and differ, ``_meta`` is the parent and the HTTP context a
span link. And one request's context never leaks into another's: every tool call is its own trace.

The matrix: standalone FastMCP 2.13.0 (mcp 1.x: the span is ours), FastMCP 4.1.7 and the newest
FastMCP (each makes its own span: adopted, never a second one), the official SDK's MCPServer
(mcp 2.x), each over streamable HTTP, with and without ``opentelemetry-instrument`` and its
Starlette/ASGI instrumentation. Each server starts once per module (one case at a time); four
client sessions run against it: no context (two calls), header only, ``_meta`` only, both.
"""

from __future__ import annotations

import gc
import re
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp_http_harness import (  # type: ignore[import-not-found]  # by file name, as pytest imports it
    Exported,
    HttpCase,
    HttpServer,
    Span,
    drive,
)
from opentelemetry import context, trace
from starlette.requests import Request

from cde_otel.instrumentation.mcp import _context
from cde_otel.instrumentation.mcp._context import choose, note_http_request
from cde_otel.semconv import ATTR_MCP_METHOD_NAME, ATTR_PROJECT_PATH
from cde_otel.testing import CapturedTelemetry

EnvFactory = Callable[..., dict[str, str]]

CASES = [
    HttpCase("fastmcp-2.13", "fastmcp_2_13", sdk_server=False, launcher=False),
    HttpCase("fastmcp-2.13+launcher", "fastmcp_2_13", sdk_server=False, launcher=True),
    HttpCase("fastmcp-4.1", "fastmcp_4", sdk_server=False, launcher=False),
    HttpCase("fastmcp-4.1+launcher", "fastmcp_4", sdk_server=False, launcher=True),
    # The newest FastMCP needs a newer OpenTelemetry API than the Starlette instrumentation's
    # release allows: no launcher variant until that instrumentation catches up.
    HttpCase("fastmcp-newest", "fastmcp_newest", sdk_server=False, launcher=False),
    HttpCase("mcp-2.x-MCPServer", "fastmcp_4", sdk_server=True, launcher=False),
    HttpCase("mcp-2.x-MCPServer+launcher", "fastmcp_4", sdk_server=True, launcher=True),
]


@dataclass(frozen=True)
class Ctx:
    """A W3C trace context the test invents (a client's span elsewhere)."""

    trace_id: str
    span_id: str

    @classmethod
    def new(cls) -> Ctx:
        return cls(secrets.token_hex(16), secrets.token_hex(8))

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-01"


@dataclass
class Run:
    case: HttpCase
    exported: Exported
    paths: dict[str, str]  # call name -> its project path (each call's own: how its span is found)
    header_only: Ctx
    meta_only: Ctx
    both_header: Ctx
    both_meta: Ctx
    feature_ids: list[str]

    def tool_span(self, call: str) -> Span:
        found = [
            s
            for s in self.exported.spans
            if s.attrs.get(ATTR_PROJECT_PATH) == self.paths[call] and s.attrs.get(ATTR_MCP_METHOD_NAME) == "tools/call"
        ]
        assert len(found) == 1, f"{self.case.id}: {len(found)} MCP spans for {call}: {found}"
        return found[0]

    def span(self, span_id: str) -> Span | None:
        return next((s for s in self.exported.spans if s.span_id == span_id), None)

    def http_span(self, span_id: str) -> Span:
        """The HTTP server span (opentelemetry-instrument's ``POST /mcp``) with that id."""
        span = self.span(span_id)
        assert span is not None and span.server and span.name.startswith("POST"), f"{self.case.id}: {span}"
        return span


@pytest.fixture(scope="module", params=CASES, ids=[c.id for c in CASES])
def run(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    venv_python: Callable[[str], Path],
    clean_env: EnvFactory,
) -> Iterator[Run]:
    case: HttpCase = request.param
    workdir = tmp_path_factory.mktemp(case.id)
    env = clean_env()
    env.pop("PYTHONPATH", None)
    server = HttpServer(case, venv_python(case.venv), workdir, env)
    try:
        paths = {name: str(workdir / name) for name in ("plain-1", "plain-2", "header", "meta", "both")}
        header_only, meta_only, both_header, both_meta = Ctx.new(), Ctx.new(), Ctx.new(), Ctx.new()
        sessions = [
            {"calls": [{"project_path": paths["plain-1"]}, {"project_path": paths["plain-2"]}]},
            {"header": header_only.traceparent, "calls": [{"project_path": paths["header"]}]},
            {"calls": [{"project_path": paths["meta"], "meta": meta_only.traceparent}]},
            {
                "header": both_header.traceparent,
                "calls": [{"project_path": paths["both"], "meta": both_meta.traceparent}],
            },
        ]
        results = drive(server.url, sessions, env)
        feature_ids = [payload["feature_id"] for session in results for payload in session]

        def complete(found: Exported) -> bool:
            calls = {s.attrs.get(ATTR_PROJECT_PATH) for s in found.spans if s.attrs.get(ATTR_MCP_METHOD_NAME)}
            if not set(paths.values()) <= calls:
                return False
            # Under the launcher the HTTP spans end after the MCP ones: wait for every parent and link.
            ids = {s.span_id for s in found.spans}
            wanted = {s.parent_id for s in found.spans if s.attrs.get(ATTR_MCP_METHOD_NAME) and s.parent_id}
            wanted |= {span_id for s in found.spans for _, span_id in s.links}
            external = {header_only.span_id, meta_only.span_id, both_meta.span_id, both_header.span_id}
            if case.launcher and not wanted - external <= ids:
                return False
            return all(f"Started feature {f}" in found.log_bodies for f in feature_ids)

        exported = server.wait_for(complete, "a span for every tool call")
        yield Run(case, exported, paths, header_only, meta_only, both_header, both_meta, feature_ids)
    finally:
        server.stop()


def test_each_request_is_one_server_span_of_the_default_service(run: Run) -> None:
    mcp_spans = [s for s in run.exported.spans if s.attrs.get(ATTR_MCP_METHOD_NAME)]
    assert all(s.server for s in mcp_spans)
    for call in run.paths:
        run.tool_span(call)  # exactly one each: an adopted framework span is never doubled
    # The default service name holds under opentelemetry-instrument too (it was unknown_service:python).
    assert {s.resource.get("service.name") for s in run.exported.spans} == {"cde-orchestrator"}


def test_calls_without_context_are_each_their_own_trace(run: Run) -> None:
    """No context from the client: every call a new trace - not the trace of the session's
    ``initialize`` (mcp 1.x serves a session in a task that keeps the context it was created in)."""
    first, second = run.tool_span("plain-1"), run.tool_span("plain-2")
    assert first.trace_id != second.trace_id
    initialize = [s for s in run.exported.spans if s.attrs.get(ATTR_MCP_METHOD_NAME) == "initialize"]
    assert initialize and {first.trace_id, second.trace_id}.isdisjoint({s.trace_id for s in initialize})
    for span in (first, second):
        assert span.links == []
        if run.case.launcher:  # the parent is this call's own HTTP request span, the root of its trace
            http = run.http_span(span.parent_id)
            assert http.trace_id == span.trace_id and http.parent_id == ""
        else:
            assert span.parent_id == ""
    if run.case.launcher:
        assert run.tool_span("plain-1").parent_id != run.tool_span("plain-2").parent_id


def test_the_http_requests_context_is_the_parent_without_meta(run: Run) -> None:
    span = run.tool_span("header")
    assert span.trace_id == run.header_only.trace_id
    assert span.links == []
    if run.case.launcher:  # the HTTP server span, itself the header's child
        assert run.http_span(span.parent_id).parent_id == run.header_only.span_id
    else:  # the traceparent header itself
        assert span.parent_id == run.header_only.span_id


def test_meta_is_the_parent_and_an_http_span_is_linked(run: Run) -> None:
    span = run.tool_span("meta")
    assert (span.trace_id, span.parent_id) == (run.meta_only.trace_id, run.meta_only.span_id)
    if run.case.launcher:
        [(trace_id, span_id)] = span.links
        http = run.http_span(span_id)
        assert http.trace_id == trace_id != span.trace_id
    else:
        assert span.links == []


def test_with_both_meta_is_the_parent_and_the_http_context_is_linked(run: Run) -> None:
    span = run.tool_span("both")
    assert (span.trace_id, span.parent_id) == (run.both_meta.trace_id, run.both_meta.span_id)
    [(trace_id, span_id)] = span.links
    assert trace_id == run.both_header.trace_id
    if run.case.launcher:
        assert run.http_span(span_id).parent_id == run.both_header.span_id
    else:
        assert span_id == run.both_header.span_id


def test_host_log_records_are_exported_under_the_launcher_too(run: Run) -> None:
    """Records of loggers that stop short of the root logger (uvicorn's access log) reach OTel logs
    once, whether cde-otel's providers serve or opentelemetry-instrument's (~45 -> 4 before)."""
    bodies = run.exported.log_bodies
    for feature_id in run.feature_ids:
        assert bodies.count(f"Started feature {feature_id}") == 1, bodies
    access = [b for b in bodies if re.search(r'"POST /mcp/? HTTP/1\.1" 200', b)]
    assert len(access) >= len(run.feature_ids), bodies


def test_newest_fastmcp_installs_beside_cde_otel_without_constraints(venv_python: Callable[[str], Path]) -> None:
    """`pip install fastmcp <cde-otel>` with no constraints resolves, to the FastMCP pip picks
    alone (scripts/mcp-test-venvs.sh checks that; the venv exists only if it held)."""
    python = venv_python("unconstrained")
    shown = subprocess.run(
        [str(python), "-c", "import cde_otel, fastmcp; print(fastmcp.__version__)"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert int(shown.stdout.split(".")[0]) >= 4


# -- the rule itself, on the OpenTelemetry API (in-memory SDK) ------------------------------------
def _request(**headers: str) -> Request:
    """A real Starlette request, as the streamable HTTP transport hands it on with each message."""
    raw = [(k.encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "POST", "path": "/mcp", "headers": raw})


def _ids(ctx: context.Context) -> tuple[str, str]:
    found = trace.get_current_span(ctx).get_span_context()
    return f"{found.trace_id:032x}", f"{found.span_id:016x}"


def test_rule_on_stdio_meta_wins_and_the_ambient_span_is_linked(telemetry: CapturedTelemetry) -> None:
    agent = Ctx.new()
    with telemetry.tracer_provider.get_tracer("t").start_as_current_span("process") as ambient:
        chosen = choose({"traceparent": agent.traceparent})
        assert _ids(chosen.parent) == (agent.trace_id, agent.span_id)
        assert chosen.link == ambient.get_span_context()
        without_meta = choose(None)
        assert trace.get_current_span(without_meta.parent) is ambient and without_meta.link is None


def test_rule_on_http_the_ambient_context_is_never_used(telemetry: CapturedTelemetry) -> None:
    """The session task's context (the request that created the session) is no request's parent."""
    with telemetry.tracer_provider.get_tracer("t").start_as_current_span("POST /mcp of initialize"):
        chosen = choose(None, _request())
    assert not trace.get_current_span(chosen.parent).get_span_context().is_valid
    assert chosen.link is None


def test_rule_on_http_the_header_is_the_parent_else_meta_with_the_header_linked() -> None:
    header, agent = Ctx.new(), Ctx.new()
    request = _request(traceparent=header.traceparent)
    assert _ids(choose(None, request).parent) == (header.trace_id, header.span_id)
    both = choose({"traceparent": agent.traceparent}, request)
    assert _ids(both.parent) == (agent.trace_id, agent.span_id)
    assert both.link is not None and (f"{both.link.trace_id:032x}", f"{both.link.span_id:016x}") == (
        header.trace_id,
        header.span_id,
    )
    same = choose({"traceparent": header.traceparent}, request)  # both the same: nothing to link
    assert _ids(same.parent) == (header.trace_id, header.span_id) and same.link is None


def test_rule_on_http_the_requests_server_span_beats_its_header(telemetry: CapturedTelemetry) -> None:
    header = Ctx.new()
    request = _request(traceparent=header.traceparent)
    with telemetry.tracer_provider.get_tracer("asgi").start_as_current_span("POST /mcp") as http:
        note_http_request(request)  # where the transport receives it, in the request's own task
    chosen = choose(None, request)  # later, in another task
    assert trace.get_current_span(chosen.parent) is http


@pytest.mark.parametrize(
    "traceparent",
    ["garbage", "00-" + "0" * 32 + "-" + "1" * 16 + "-01", "00-" + "a" * 32 + "-" + "b" * 16 + "-01" + "x" * 1000],
)
def test_a_malformed_or_oversized_context_from_the_client_is_as_if_absent(traceparent: str) -> None:
    chosen = choose({"traceparent": traceparent}, _request(traceparent=traceparent))
    assert not trace.get_current_span(chosen.parent).get_span_context().is_valid
    assert chosen.link is None


def test_a_requests_kept_context_goes_with_the_request() -> None:
    before = len(_context._received)
    request: Any = _request()
    note_http_request(request)
    assert len(_context._received) == before + 1
    del request
    gc.collect()
    assert len(_context._received) == before


# -- any MCP server: the start-up hook ------------------------------------------------------------
@pytest.mark.parametrize("enabled", [True, False])
def test_importing_the_mcp_server_library_starts_telemetry_when_enabled(
    enabled: bool, tmp_path: Path, clean_env: EnvFactory
) -> None:
    """A server that is not the orchestrator: ``import mcp.server`` alone configures cde-otel."""
    env = clean_env(CDE_OTEL_LOCAL_DIR=str(tmp_path / "telemetry"), **({"CDE_OTEL_ENABLED": "true"} if enabled else {}))
    env.pop("PYTHONPATH", None)
    code = "import mcp.server.lowlevel, sys; print('cde_otel.telemetry' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(enabled)
    assert ("cde-otel: telemetry on" in done.stderr) is enabled
