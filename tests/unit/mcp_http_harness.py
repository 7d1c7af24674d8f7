"""The streamable HTTP harness of tests/unit/test_mcp_http.py: real servers, the official client.

* :class:`HttpServer` runs one MCP server on 127.0.0.1 (a free port) from a cached venv - standalone
  FastMCP with ``fastmcp run orchestrator_server.py:app --transport http``, or the SDK's own server
  (the fixture run as a script) - with or without ``opentelemetry-instrument``, and reads back what
  it exported: the embedded default's OTLP-JSON files, or (under the launcher, whose providers
  serve) the console exporters' output on its stdout.
* :func:`drive` runs the official client (``mcp.client.streamable_http``) in a child process of
  this interpreter with no telemetry of its own, so ``params._meta`` and the ``traceparent``
  header carry exactly what a session asks for and nothing else. Run as a script, this module
  is that client.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MCP_FIXTURES = ROOT / "tests" / "mcp_fixtures"
SERVER_SCRIPT = MCP_FIXTURES / "orchestrator_server.py"
DEADLINE_S = 60.0


@dataclass(frozen=True)
class HttpCase:
    id: str
    venv: str
    sdk_server: bool  # the SDK's own server (MCPServer); else standalone FastMCP via `fastmcp run`
    launcher: bool  # under opentelemetry-instrument (+ the Starlette/ASGI instrumentation)


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    server: bool
    attrs: dict[str, Any]
    links: list[tuple[str, str]]
    resource: dict[str, Any]


@dataclass
class Exported:
    spans: list[Span] = field(default_factory=list)
    log_bodies: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class HttpServer:
    def __init__(self, case: HttpCase, python: Path, workdir: Path, env: dict[str, str]) -> None:
        """Starts the server (``env``: its environment, whose ``OTEL_*`` choices win over the defaults)."""
        self.case = case
        self.port = free_port()
        self.workdir = workdir
        self.local = workdir / "telemetry"
        bin_dir = python.parent
        if case.sdk_server:
            command = [str(python), str(SERVER_SCRIPT)]
        else:
            command = [str(bin_dir / "fastmcp"), "run", f"{SERVER_SCRIPT}:app", "--transport", "http"]
            command += ["--host", "127.0.0.1", "--port", str(self.port)]
        given = env
        env = {
            **env,
            "PYTHONPATH": str(MCP_FIXTURES),
            "CDE_OTEL_ENABLED": "true",
            "CDE_FIXTURE_FRAMEWORK": "mcp" if case.sdk_server else "fastmcp",
            "CDE_FIXTURE_HTTP_PORT": str(self.port),
            "FASTMCP_CHECK_FOR_UPDATES": "off",  # no call to PyPI from a test
            "FASTMCP_SHOW_CLI_BANNER": "false",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_BLRP_SCHEDULE_DELAY": "100",
        }
        if case.launcher:
            command = [str(bin_dir / "opentelemetry-instrument"), *command]
            # The launcher's exporters print to stdout (free: HTTP), unless the caller chose others.
            console = {
                "OTEL_TRACES_EXPORTER": "console",
                "OTEL_LOGS_EXPORTER": "console",
                "OTEL_METRICS_EXPORTER": "none",
            }
            env = {**env, **console, **{k: v for k, v in given.items() if k in console}}
        elif "OTEL_EXPORTER_OTLP_ENDPOINT" not in given:
            env["CDE_OTEL_LOCAL_DIR"] = str(self.local)
        self.stdout = workdir / "server.stdout"
        self.stderr = workdir / "server.stderr"
        with self.stdout.open("w") as out, self.stderr.open("w") as err:
            self.process = subprocess.Popen(command, env=env, cwd=workdir, stdout=out, stderr=err)
        self._wait_listening()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.case.id} exited ({self.process.returncode}): {self.stderr_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"{self.case.id} not listening after {DEADLINE_S}s: {self.stderr_tail()}")

    def stderr_tail(self) -> str:
        return self.stderr.read_text()[-3000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:  # uvicorn waits for open streams: what we read is exported already
                self.process.kill()
                self.process.wait(timeout=10)

    def exported(self) -> Exported:
        if self.case.launcher:
            return _console_output(self.stdout.read_text())
        found = Exported()
        traces, logs = self.local / "traces.jsonl", self.local / "logs.jsonl"
        if traces.exists():
            found.spans = list(_otlp_spans(traces))
        if logs.exists():
            found.log_bodies = list(_otlp_log_bodies(logs))
        return found

    def wait_for(self, predicate: Any, what: str) -> Exported:
        """What the server exported, once ``predicate(exported)`` holds (polled, with a deadline)."""
        deadline = time.monotonic() + DEADLINE_S
        found = Exported()
        while time.monotonic() < deadline:
            try:
                found = self.exported()
            except ValueError:  # a line still being written
                time.sleep(0.1)
                continue
            if predicate(found):
                return found
            time.sleep(0.1)
        names = sorted({s.name for s in found.spans})
        raise AssertionError(f"{self.case.id}: {what} not exported after {DEADLINE_S}s (spans: {names})")


def _otlp_spans(path: Path) -> list[Span]:
    spans = []
    for line in path.read_text().splitlines():
        for resource_spans in json.loads(line)["resourceSpans"]:
            resource = {a["key"]: next(iter(a["value"].values())) for a in resource_spans["resource"]["attributes"]}
            for scope in resource_spans["scopeSpans"]:
                for span in scope["spans"]:
                    spans.append(
                        Span(
                            span["name"],
                            span["traceId"],
                            span["spanId"],
                            span.get("parentSpanId", ""),
                            span.get("kind") in (2, "SPAN_KIND_SERVER"),
                            {a["key"]: next(iter(a["value"].values())) for a in span.get("attributes", [])},
                            [(link["traceId"], link["spanId"]) for link in span.get("links", [])],
                            resource,
                        )
                    )
    return spans


def _otlp_log_bodies(path: Path) -> list[str]:
    bodies = []
    for line in path.read_text().splitlines():
        for resource_logs in json.loads(line)["resourceLogs"]:
            for scope in resource_logs["scopeLogs"]:
                bodies += [str(next(iter(r.get("body", {}).values()), "")) for r in scope["logRecords"]]
    return bodies


def _hex(value: str | None) -> str:
    return (value or "").removeprefix("0x")


def _console_output(text: str) -> Exported:
    """The SDK console exporters' JSON objects (indented, one after another) on the server's stdout."""
    found = Exported()
    decoder = json.JSONDecoder()
    index = 0
    while (start := text.find("{", index)) >= 0:
        try:
            obj, index = decoder.raw_decode(text, start)
        except ValueError:
            index = start + 1
            continue
        if "context" in obj and "kind" in obj:
            found.spans.append(
                Span(
                    obj["name"],
                    _hex(obj["context"]["trace_id"]),
                    _hex(obj["context"]["span_id"]),
                    _hex(obj.get("parent_id")),
                    obj["kind"] == "SpanKind.SERVER",
                    dict(obj.get("attributes") or {}),
                    [(_hex(x["context"]["trace_id"]), _hex(x["context"]["span_id"])) for x in obj.get("links") or []],
                    dict(obj.get("resource", {}).get("attributes") or {}),
                )
            )
        elif "body" in obj:
            found.log_bodies.append(str(obj["body"]))
    return found


# -- the client ---------------------------------------------------------------------------------
def drive(url: str, sessions: list[dict[str, Any]], env: dict[str, str]) -> list[list[dict[str, Any]]]:
    """Runs ``sessions`` against ``url``, each ``{"header": traceparent|None, "calls": [{"meta":
    traceparent|None, "project_path": ...}]}``: one client session each (its HTTP requests carry the
    header), ``cde_startFeature`` per call. Returns each call's result payload."""
    done = subprocess.run(
        [sys.executable, __file__, url, json.dumps(sessions)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results: list[list[dict[str, Any]]] = json.loads(done.stdout)
    return results


async def _client(url: str, sessions: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    results = []
    for spec in sessions:
        headers = {"traceparent": spec["header"]} if spec.get("header") else None
        async with (
            create_mcp_http_client(headers=headers) as http,
            streamable_http_client(url, http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            await session.list_tools()
            payloads = []
            for call in spec["calls"]:
                meta: Any = {"traceparent": call["meta"]} if call.get("meta") else None
                arguments = {"user_prompt": "Add login", "project_path": call["project_path"]}
                result = await session.call_tool("cde_startFeature", arguments, meta=meta)
                assert not result.is_error, result.content
                payloads.append(json.loads(result.content[0].text))
            results.append(payloads)
    return results


if __name__ == "__main__":
    import anyio

    print(json.dumps(anyio.run(_client, sys.argv[1], json.loads(sys.argv[2]))))
