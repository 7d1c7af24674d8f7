"""The orchestrator fixture driven in one process: the workload ``bench_mcp_instructions`` counts.

    <fixture venv>/bin/python bench/_inprocess_fixture.py off|on|floor CYCLES [WARM]

The server of ``bench_mcp`` (``_orchestrator_server``: the fixture with upstream's per-call logging,
or the floor's hand-written instrumentation, ``_floor_server.instrument``) served to fastmcp's
in-memory client, so the process holds the server and the client and nothing else: ``WARM`` cycles,
then ``CYCLES`` cycles (``cde_startFeature`` and two ``cde_submitWork``, every answer checked), then
every signal flushed. ``on`` is whatever ``CDE_OTEL_ENABLED`` and the ``OTEL_*`` variables make of
it, through the start-up hook as in any server. Prints the calls made after the warm-up.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import runpy
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent / "tests" / "mcp_fixtures")]

import _orchestrator_server  # noqa: E402  # the fixture's venv: found through the paths above
from bench_mcp import _fixture_cycle  # noqa: E402  # bench_mcp's very cycle, every answer checked


async def drive(mode: str, cycles: int, warm: int) -> int:
    floor_providers = importlib.import_module("_floor_server").instrument() if mode == "floor" else ()
    _orchestrator_server._patch_tool_decorator()
    app = runpy.run_path(str(_orchestrator_server.FIXTURE), run_name="in_process")["app"]
    client_class: Any = importlib.import_module("fastmcp").Client
    project = tempfile.mkdtemp(prefix="cde-otel-bench-")
    async with client_class(app) as client:
        for i in range(warm):
            await _fixture_cycle(client, project, i)
        for i in range(cycles):
            await _fixture_cycle(client, project, warm + i)
    if mode == "on":
        importlib.import_module("cde_otel.telemetry").force_flush()
    for provider in floor_providers:
        if not provider.force_flush():
            raise RuntimeError(f"the floor's {type(provider).__name__} did not flush")
    return cycles * 3


if __name__ == "__main__":
    mode, cycles = sys.argv[1], int(sys.argv[2])
    warm = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    print(json.dumps({"mode": mode, "calls": asyncio.run(drive(mode, cycles, warm))}))
