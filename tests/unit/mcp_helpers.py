"""Helpers for the MCP tests: the test process's global telemetry, server venvs, stdio sessions, span trees."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest
from opentelemetry import trace
from telemetry_helpers import Telemetry, make_telemetry, otlp_json_spans

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "mcp_fixtures"
T = TypeVar("T")

_global: Telemetry | None = None


def global_telemetry() -> Telemetry:
    """In-memory providers installed as the process's global tracer provider (once per process).

    The mcp SDK 2.x traces through the global provider - its server span, and the client span whose
    context it injects into ``params._meta`` - so tests that look at those spans share this one.
    """
    global _global
    if _global is None:
        _global = make_telemetry()
        trace.set_tracer_provider(_global.tracer_provider)
    return _global


_venvs: dict[str, Path] | None = None


def venv_python(name: str) -> Path:
    """The interpreter of a cached server venv, brought up to date with this checkout once per session.

    scripts/mcp-test-venvs.sh is idempotent (a second or so when nothing changed); it fails the
    test - never skips it - when a venv cannot be made.
    """
    global _venvs
    if _venvs is None:
        done = subprocess.run(
            ["bash", str(ROOT / "scripts" / "mcp-test-venvs.sh")],
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"scripts/mcp-test-venvs.sh failed ({done.returncode}):\n{done.stderr[-3000:]}")
        _venvs = {}
        for line in done.stdout.splitlines():
            key, _, value = line.partition("=")
            _venvs[key.removeprefix("CDE_OTEL_VENV_").lower()] = Path(value)
    venv = _venvs.get(name)
    if venv is None or not (venv / "bin" / "python").exists():
        pytest.fail(f"MCP test venv {name!r} missing ({_venvs}): see scripts/mcp-test-venvs.sh")
    return venv / "bin" / "python"


def server_env(local_dir: Path, **extra: str) -> dict[str, str]:
    """Telemetry on, kept locally as OTLP-JSON in ``local_dir``; nothing inherited from this process's telemetry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDE_OTEL_", "OTEL_", "TRACEPARENT", "BAGGAGE"))}
    env.pop("PYTHONPATH", None)
    env.update(CDE_OTEL_ENABLED="true", CDE_OTEL_LOCAL_DIR=str(local_dir), OTEL_METRIC_EXPORT_INTERVAL="500", **extra)
    return env


def run_session(
    command: str, args: list[str], env: dict[str, str], cwd: Path, scenario: Callable[[Any], Awaitable[T]]
) -> T:
    """Runs ``scenario(session)`` against a stdio server subprocess with the official client."""
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    async def main() -> T:
        params = StdioServerParameters(command=command, args=args, env=env, cwd=cwd)
        with (cwd / "server.stderr").open("w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
                with anyio.fail_after(120):
                    await session.initialize()
                    return await scenario(session)

    return anyio.run(main)


def read_spans(local_dir: Path, timeout: float = 30.0) -> list[dict[str, Any]]:
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


def metric_points(local_dir: Path, name: str) -> list[dict[str, Any]]:
    """Data points of one metric from the server's metrics.jsonl, each with flat ``attrs``."""
    points: list[dict[str, Any]] = []
    path = local_dir / "metrics.jsonl"
    if not path.exists():
        return points
    for line in path.read_text().splitlines():
        for rm in json.loads(line)["resourceMetrics"]:
            for sm in rm["scopeMetrics"]:
                for metric in sm["metrics"]:
                    if metric["name"] != name:
                        continue
                    data = next(v for k, v in metric.items() if isinstance(v, dict) and "dataPoints" in v)
                    for point in data["dataPoints"]:
                        point["attrs"] = {
                            a["key"]: next(iter(a["value"].values())) for a in point.get("attributes", [])
                        }
                        points.append(point)
    return points


class SpanTree:
    """OTLP-JSON spans indexed by id, with parent and ancestor lookups."""

    def __init__(self, spans: list[dict[str, Any]]) -> None:
        self.spans = spans
        self.by_id = {s["spanId"]: s for s in spans}

    def named(self, name: str) -> list[dict[str, Any]]:
        return [s for s in self.spans if s["name"] == name]

    def servers(self) -> list[dict[str, Any]]:
        return [s for s in self.spans if s.get("kind") in (2, "SPAN_KIND_SERVER")]

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
