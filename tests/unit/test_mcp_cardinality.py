"""An untrusted client cannot grow the server's metric series, attribute sizes or memory.

`cde-otel mcp` (telemetry on, OTLP-JSON files) is driven by the official client with thousands
of tool names it never registered and hundreds of methods outside the MCP specification, some
of them 10-100 KB long. Every metric attribute must come from a bounded set (``_OTHER`` for
the rest), every recorded value must be capped, and the server's resident memory must stay
flat after warm-up.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import psutil
from mcp import types
from mcp.shared.exceptions import MCPError

from cde_otel.semconv import (
    ATTR_GEN_AI_TOOL_NAME,
    ATTR_MCP_METHOD_NAME,
    METRIC_ERRORS,
    METRIC_MCP_SERVER_OPERATION_DURATION,
    OTHER_VALUE,
)

EnvFactory = Callable[..., dict[str, str]]
PointReader = Callable[[Path, str], list[dict[str, Any]]]
UNKNOWN_TOOLS = 2000
UNKNOWN_METHODS = 200
HUGE = (10_000, 40_000, 100_000)  # every 20th name is this long
CONCURRENCY = 32
MAX_VALUE = 256
# Generous: the same load grew it by well over 100 MB before names were bounded.
MAX_RSS_GROWTH = 40 * 2**20


def _name(prefix: str, i: int) -> str:
    base = f"{prefix}-{i}"
    return base + "x" * HUGE[i // 20 % len(HUGE)] if i % 20 == 0 else base


def _server_process() -> psutil.Process:
    [server] = [p for p in psutil.Process().children(recursive=True) if "mcp" in p.cmdline()]
    return server


async def _flood(session: Any, count: int, send: Callable[[int], Any]) -> None:
    limiter = anyio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        async with limiter:
            await send(i)

    async with anyio.create_task_group() as group:
        for i in range(count):
            group.start_soon(one, i)


def test_unknown_names_and_methods_stay_bounded(
    tmp_path: Path, run_session: Callable[..., Any], clean_env: EnvFactory, otlp_json_points: PointReader
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    local = tmp_path / "telemetry"
    env = clean_env(CDE_OTEL_ENABLED="true", CDE_OTEL_LOCAL_DIR=str(local), OTEL_METRIC_EXPORT_INTERVAL="1000")
    env.pop("PYTHONPATH", None)
    rss: dict[str, int] = {}

    async def call_unknown_tool(session: Any, i: int) -> None:
        result = await session.call_tool(_name("tool", i), {"project_path": str(project)})
        assert result.is_error

    async def send_unknown_method(session: Any, i: int) -> None:
        try:
            await session.send_request(types.Request(method=_name("x/method", i), params=None), types.EmptyResult)
        except MCPError as refused:
            assert refused.error.code in (-32601, -32602)
        else:
            raise AssertionError("an unknown method was answered")

    async def scenario(session: Any) -> None:
        assert {t.name for t in (await session.list_tools()).tools} >= {"cde_startFeature"}
        await _flood(session, 200, lambda i: call_unknown_tool(session, UNKNOWN_TOOLS + i))  # warm-up
        server = _server_process()
        rss["before"] = server.memory_info().rss
        await _flood(session, UNKNOWN_TOOLS, lambda i: call_unknown_tool(session, i))
        await _flood(session, UNKNOWN_METHODS, lambda i: send_unknown_method(session, i))
        rss["after"] = server.memory_info().rss
        started = await session.call_tool("cde_startFeature", {"prompt": "still serving", "project_path": str(project)})
        assert not started.is_error

    run_session(str(Path(sys.executable).with_name("cde-otel")), ["mcp"], env, tmp_path, scenario)

    growth = rss["after"] - rss["before"]
    print(f"server RSS {rss['before'] / 2**20:.1f} MB -> {rss['after'] / 2**20:.1f} MB (+{growth / 2**20:.1f} MB)")
    assert growth < MAX_RSS_GROWTH, f"server RSS grew {growth / 2**20:.1f} MB"

    metrics = local / "metrics.jsonl"
    for metric in (METRIC_MCP_SERVER_OPERATION_DURATION, METRIC_ERRORS):
        points = otlp_json_points(metrics, metric)
        series = {json.dumps(p["attrs"], sort_keys=True) for p in points}
        print(f"{metric}: {len(series)} series")
        assert 0 < len(series) <= 8, (metric, len(series), sorted(series)[:10])
        assert all(len(str(v)) <= MAX_VALUE for p in points for v in p["attrs"].values()), metric
    durations = [p["attrs"] for p in otlp_json_points(metrics, METRIC_MCP_SERVER_OPERATION_DURATION)]
    assert {a.get(ATTR_GEN_AI_TOOL_NAME) for a in durations} >= {OTHER_VALUE, "cde_startFeature"}
    assert OTHER_VALUE in {a[ATTR_MCP_METHOD_NAME] for a in durations}

    spans = _spans(local / "traces.jsonl")
    assert len(spans) >= UNKNOWN_TOOLS + UNKNOWN_METHODS  # each request still has its span
    assert {s["name"] for s in spans if s.get("kind") == 2} <= {
        "initialize",
        "notifications/initialized",
        "tools/list",
        "tools/call",
        "tools/call cde_startFeature",
        OTHER_VALUE,
    }
    longest = max(len(str(a["value"])) for s in spans for a in s.get("attributes", []))
    assert longest <= MAX_VALUE + 32, longest  # 256 characters, and the JSON of the value's type


def _spans(path: Path, timeout: float = 30.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            lines = path.read_text().splitlines() if path.exists() else []
            return [
                span
                for line in lines
                for resource in json.loads(line)["resourceSpans"]
                for scope in resource["scopeSpans"]
                for span in scope["spans"]
            ]
        except json.JSONDecodeError:
            time.sleep(0.1)  # a line still being written
    raise AssertionError(f"no readable spans in {path}")
