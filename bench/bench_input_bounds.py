"""Benchmark: how fast a 10 MB id, phase or path is refused (goal ≤ 50 ms), through the core and through `cde-otel mcp`.

    .venv/bin/python bench/bench_input_bounds.py [--quick]

**Core**: each refusal (``Project.get_feature``, ``Feature.advance_phase``,
``FileSystemProjectRepository.get_or_create``, ``ProjectRoots.confine``) called with a 10 MB string,
rendered as the JSON an MCP client gets (``ErrorFormatter.format_json``); wall time per refusal
(median and max of the runs) and the answer's size. Side by side, the honest floor: reading the
input once (``str.encode``, 10 MB) — what any code that looks at the whole input pays at least.
``core_refusal_max_ms`` is the worst case over the kinds (goal ≤ 50 ms).

**MCP**: a real `cde-otel mcp` (telemetry off) driven over stdio by the official client; the round
trip of each refused tool call carrying 10 MB, next to the same call to a server made of the
official SDK alone (``FLOOR_SERVER``: one tool taking a string, refusing it by its length; none
of our code): the cost of moving, parsing and validating 10 MB of JSON-RPC, which no server
avoids. ``mcp_refusal_overhead_ms`` is the difference of the medians, worst kind: what our
refusal adds to that floor (goal ≤ 50 ms).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from _cli import print_measurement

from cde_otel.core import FileSystemProjectRepository, Project, ProjectRoots
from cde_otel.errors import CDEError, ErrorFormatter

TEN_MB = 10 * 1024 * 1024
GOAL_MS = 50.0


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _core_cases(root: Path, huge: str) -> dict[str, tuple[Callable[[str], Any], str]]:
    """Each refusal and its 10 MB input (built beforehand: the timing is the refusal's alone)."""
    repo = FileSystemProjectRepository()
    project: Project = repo.get_or_create(root)
    project.activate()
    feature = project.start_feature("Add login")
    repo.save(project)
    roots = ProjectRoots([root])
    return {
        "feature_id": (project.get_feature, huge),
        "phase": (feature.advance_phase, huge),
        "project_path": (repo.get_or_create, f"{root}/{huge}"),
        "confined_path": (roots.confine, huge),
    }


def measure_core(runs: int) -> dict[str, Any]:
    huge = "x" * TEN_MB
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="cde-bench-bounds-") as tmp:
        cases = _core_cases(Path(tmp), huge)
        floor = []
        for _ in range(runs):
            started = time.perf_counter()
            huge.encode()
            floor.append(time.perf_counter() - started)
        for name, (call, given) in cases.items():
            times, sizes, codes = [], set(), set()
            for _ in range(runs):
                started = time.perf_counter()
                try:
                    call(given)
                except CDEError as exc:
                    answer = ErrorFormatter.format_json(exc)
                    codes.add(exc.code)
                else:
                    raise AssertionError(f"{name}: a 10 MB input was accepted")
                times.append(time.perf_counter() - started)
                sizes.add(len(answer.encode()))
            result[name] = {"codes": sorted(codes), "median_ms": _ms(statistics.median(times)),
                            "max_ms": _ms(max(times)), "answer_bytes": max(sizes)}  # fmt: skip
    result["floor_read_input_once_median_ms"] = _ms(statistics.median(floor))
    return result


#: The floor server: the official SDK alone, one tool taking a string and answering by its length (none of our
#: code; it answers rather than raises, as raising costs the SDK's own error logging).
FLOOR_SERVER = """
from mcp.server.mcpserver import MCPServer
server = MCPServer("floor")
@server.tool(name="floor_check")
def floor_check(value: str) -> str:
    return "refused: too long" if len(value) > 64 else value
server.run("stdio")
"""


async def _mcp_round_trips(runs: int, work: Path) -> dict[str, Any]:
    from contextlib import AsyncExitStack

    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client
    from mcp.types import TextContent

    huge = "x" * TEN_MB
    calls: dict[str, tuple[str, str, dict[str, Any]]] = {
        "feature_id": ("ours", "cde_getFeatureStatus", {"feature_id": huge}),
        "phase": ("ours", "cde_submitWork", {"feature_id": "f" * 32, "phase": huge}),
        "project_path": ("ours", "cde_startFeature", {"prompt": "Add login", "project_path": huge}),
        "floor_sdk_tool": ("floor", "floor_check", {"value": huge}),
    }
    servers = {
        "ours": StdioServerParameters(
            command=str(Path(sys.executable).with_name("cde-otel")), args=["mcp", "--project", str(work)], cwd=work
        ),
        "floor": StdioServerParameters(command=sys.executable, args=["-c", FLOOR_SERVER], cwd=work),
    }
    times: dict[str, list[float]] = {name: [] for name in calls}
    sizes: dict[str, int] = {}
    async with AsyncExitStack() as stack:
        sessions = {}
        for name, params in servers.items():
            errlog = stack.enter_context((work / f"{name}.stderr").open("w"))
            read, write = await stack.enter_async_context(stdio_client(params, errlog=errlog))
            sessions[name] = await stack.enter_async_context(ClientSession(read, write))
            await sessions[name].initialize()
        for _ in range(runs):
            for name, (server, tool, arguments) in calls.items():  # interleaved: the same conditions for each
                started = time.perf_counter()
                answer = await sessions[server].call_tool(tool, arguments)
                times[name].append(time.perf_counter() - started)
                first = answer.content[0]
                assert isinstance(first, TextContent), name
                sizes[name] = len(first.text.encode())
                if server == "ours":
                    assert answer.is_error, name
                    assert json.loads(first.text)["code"] == "E005", first.text[:200]
    return {
        name: {"median_ms": _ms(statistics.median(t)), "max_ms": _ms(max(t)), "answer_bytes": sizes[name]}
        for name, t in times.items()
    }


def measure_input_bounds(quick: bool = False) -> dict[str, Any]:
    runs = 3 if quick else 15
    core = measure_core(runs)
    with tempfile.TemporaryDirectory(prefix="cde-bench-bounds-mcp-") as tmp:
        mcp = anyio.run(_mcp_round_trips, 2 if quick else 7, Path(tmp))
    kinds = ("feature_id", "phase", "project_path")
    floor = mcp["floor_sdk_tool"]["median_ms"]
    return {
        "core_refusal_max_ms": max(core[k]["max_ms"] for k in (*kinds, "confined_path")),
        "core_refusal_vs_reading_input_once": round(
            max(core[k]["median_ms"] for k in kinds) / core["floor_read_input_once_median_ms"], 3
        ),
        "core_answer_max_bytes": max(core[k]["answer_bytes"] for k in (*kinds, "confined_path")),
        "mcp_refusal_overhead_ms": round(max(mcp[k]["median_ms"] for k in kinds) - floor, 3),
        "mcp_answer_max_bytes": max(mcp[k]["answer_bytes"] for k in kinds),
        "goal_ms": GOAL_MS,
        "core": core,
        "mcp": mcp,
        "runs": runs,
    }


if __name__ == "__main__":
    print_measurement(measure_input_bounds, __doc__)
