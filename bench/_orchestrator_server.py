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
"""

from __future__ import annotations

import functools
import importlib
import logging
import runpy
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "mcp_fixtures" / "orchestrator_server.py"
_telemetry_log = logging.getLogger("cde_orchestrator.infrastructure.telemetry")


def tool_logging(func: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Upstream's telemetry logger around one tool: three INFO records per call."""

    @functools.wraps(func)
    async def logged(*args: Any, **kwargs: Any) -> Any:
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


def serve() -> None:
    _patch_tool_decorator()
    sys.argv = [str(FIXTURE)]
    runpy.run_path(str(FIXTURE), run_name="__main__")


if __name__ == "__main__":
    serve()
