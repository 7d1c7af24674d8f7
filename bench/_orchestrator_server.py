"""The orchestrator fixture as the MCP benchmark serves it: upstream's per-call logging shape.

    <fixture venv>/bin/python bench/_orchestrator_server.py      (PYTHONPATH: tests/mcp_fixtures)

The fixture (tests/mcp_fixtures/orchestrator_server.py) runs unchanged; this launcher only
gives each tool call the three records upstream's own telemetry logger writes around a tool
(started, finished with its duration, the result's size), as ``tool_logging`` below, so that a
call carries ~6 host records like upstream's: those three, the SDK's ``Processing request``, the
tool's own line and, on a new project, the repository's. ``bench/_floor_server.py`` serves the
same through this module, so the floor and ours run the very same host code.

Nothing of cde-otel is imported here: with ``CDE_OTEL_ENABLED=true`` its start-up hook
instruments the process as it would any server.

With ``CDE_BENCH_GC_FILE`` set, the server also notes every garbage collection (its generation,
when it ended, the CPU time it took on its thread) and when each tool call started, and writes
them to that file as it exits: the benchmark's account of the collector's share of a call.
"""

from __future__ import annotations

import atexit
import functools
import gc
import importlib
import json
import logging
import os
import runpy
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "mcp_fixtures" / "orchestrator_server.py"
_telemetry_log = logging.getLogger("cde_orchestrator.infrastructure.telemetry")
#: When each tool call started (time.monotonic()), while the collections are accounted.
_call_starts: list[float] | None = None


def tool_logging(func: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Upstream's telemetry logger around one tool: three INFO records per call."""

    @functools.wraps(func)
    async def logged(*args: Any, **kwargs: Any) -> Any:
        if _call_starts is not None:
            _call_starts.append(time.monotonic())
        _telemetry_log.info("Tool %s started", func.__name__)
        start = time.perf_counter()
        result = await func(*args, **kwargs)
        _telemetry_log.info("Tool %s finished in %.2f ms", func.__name__, (time.perf_counter() - start) * 1e3)
        _telemetry_log.info("Tool %s returned %d characters", func.__name__, len(str(result)))
        return result

    return logged


def _patch_tool_decorator() -> None:
    fastmcp_class: Any = importlib.import_module("fastmcp").FastMCP  # the fixture's venv only
    original = fastmcp_class.tool

    def tool(self: Any, *args: Any, **kwargs: Any) -> Any:
        register = original(self, *args, **kwargs)
        if not callable(register) or (args and callable(args[0])):
            return register  # @app.tool without parentheses: already registered
        return lambda func: register(tool_logging(func))

    fastmcp_class.tool = tool


def _account_collections(path: str) -> None:
    """Notes each collection as ``[generation, end (monotonic), CPU ms]`` and writes the collections
    and the calls' starts to ``path`` at exit."""
    global _call_starts  # switched on once, before the first call
    calls: list[float] = []
    _call_starts = calls
    collections: list[tuple[int, float, float]] = []
    started = [0.0]

    def note(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.thread_time()  # the collection runs on the thread that triggered it
        else:
            collections.append((info["generation"], time.monotonic(), (time.thread_time() - started[0]) * 1e3))

    def write() -> None:
        Path(path).write_text(json.dumps({"calls": calls, "collections": collections}))

    gc.callbacks.append(note)
    atexit.register(write)


def serve() -> None:
    gc_file = os.environ.get("CDE_BENCH_GC_FILE")
    if gc_file:
        _account_collections(gc_file)
    _patch_tool_decorator()
    sys.argv = [str(FIXTURE)]
    runpy.run_path(str(FIXTURE), run_name="__main__")


if __name__ == "__main__":
    serve()
