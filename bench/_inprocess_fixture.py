"""The orchestrator fixture driven in one process: the workload ``bench_mcp_instructions`` counts.

    <fixture venv>/bin/python bench/_inprocess_fixture.py off|on|floor CYCLES [WARM] [--pause]

The server of ``bench_mcp`` (``_orchestrator_server``: the fixture with upstream's per-call logging,
or the floor's hand-written instrumentation, ``_floor_server.instrument``) served to fastmcp's
in-memory client, so the process holds the server and the client and nothing else: ``WARM`` cycles,
then ``CYCLES`` cycles (``cde_startFeature`` and two ``cde_submitWork``, every answer checked), then
every signal flushed. ``on`` is whatever ``CDE_OTEL_ENABLED`` and the ``OTEL_*`` variables make of
it, through the start-up hook as in any server. Prints the calls made after the warm-up.

With ``--pause`` it prints ``warm`` after the warm-up and ``timed`` after the timed cycles (before the
flush), and each time waits for a line on stdin: a counter can be read in between (``callgrind_control``).
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


def _mark(tag: str) -> None:
    print(tag, flush=True)
    sys.stdin.readline()


async def drive(mode: str, cycles: int, warm: int, pause: bool = False) -> int:
    floor_providers = importlib.import_module("_floor_server").instrument() if mode == "floor" else ()
    _orchestrator_server._patch_tool_decorator()
    app = runpy.run_path(str(_orchestrator_server.FIXTURE), run_name="in_process")["app"]
    client_class: Any = importlib.import_module("fastmcp").Client
    project = tempfile.mkdtemp(prefix="cde-otel-bench-")
    async with client_class(app) as client:
        for i in range(warm):
            await _fixture_cycle(client, project, i)
        if pause:
            _mark("warm")
        for i in range(cycles):
            await _fixture_cycle(client, project, warm + i)
        if pause:
            _mark("timed")
    if mode == "on":
        importlib.import_module("cde_otel.telemetry").force_flush()
    for provider in floor_providers:
        if not provider.force_flush():
            raise RuntimeError(f"the floor's {type(provider).__name__} did not flush")
    return cycles * 3


if __name__ == "__main__":
    arguments = [argument for argument in sys.argv[1:] if argument != "--pause"]
    mode, cycles = arguments[0], int(arguments[1])
    warm = int(arguments[2]) if len(arguments) > 2 else 5
    calls = asyncio.run(drive(mode, cycles, warm, pause="--pause" in sys.argv))
    print(json.dumps({"mode": mode, "calls": calls}))
