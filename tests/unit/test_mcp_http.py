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

import re
import secrets
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mcp_http_harness import Exported, HttpCase, HttpServer, Span, drive

from cde_otel.semconv import ATTR_MCP_METHOD_NAME, ATTR_PROJECT_PATH

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
