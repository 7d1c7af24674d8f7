"""`cde-otel mcp`: the CDE workflow as an MCP server (stdio), on the official ``mcp`` SDK.

    cde-otel mcp [--project DIR] [--allow-root DIR ...]

Confinement: the server serves ``--project`` (default: the current directory) and the directories
given with ``--allow-root``, nothing else. A ``project_path`` resolves against ``--project`` when
relative; one that resolves (``..`` collapsed, symlinks followed) outside every allowed root is
refused with E004 before anything is read or created. Over-long arguments are refused with E005.

Tools (``project_path`` defaults to ``--project``):

* ``cde_startFeature(prompt, project_path?, workflow_type?, name?)`` - start a feature in its
  ``define`` phase (the project is created and activated when new);
* ``cde_submitWork(feature_id, phase, results?, project_path?)`` - record a phase's work and
  move to the next phase; the work of ``review`` completes the feature;
* ``cde_getFeatureStatus(feature_id?, project_path?)`` - one feature, or the project's features
  (reads only: it never creates ``.cde/``);
* ``cde_getHealth(project_path?)`` - health status, checks and alerts (``cde-otel health``).

A resource ``cde://errors/{code}`` explains an error code. Errors come back to the agent as
``ErrorFormatter.to_json`` with ``isError`` (never a traceback); an unexpected one (not a coded
``CDEError``) is also logged at warning on stderr, its traceback scrubbed of secrets. State
writes are retried and circuit-broken (``ResilientProjectRepository``); the tools run that file
and lock work in a worker thread, so the event loop keeps serving the session meanwhile.

Telemetry follows the one switch, like every other process: with ``CDE_OTEL_ENABLED=true`` in the
server's environment (the ``env`` of the MCP client's config) the start-up hook configures it and
every tool call is one trace; without it the server records nothing. stdout carries only the
protocol; whatever cde-otel or the server prints goes to stderr (the client's server log).
"""

# No `from __future__ import annotations`: the SDK reads the tools' signatures, whose types are
# imported inside build_server (mcp is an optional dependency).
import json
import logging
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cde_otel.cli._console import err_console

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer
    from mcp.types import CallToolResult

app = typer.Typer(help="Serve the CDE workflow as MCP tools over stdio.", invoke_without_command=True)
logger = logging.getLogger("cde_otel.mcp")
logger.addHandler(logging.NullHandler())

SERVER_NAME = "cde-otel"
INSTRUCTIONS = (
    "CDE guides a feature through the phases define, decompose, design, implement, test, review. "
    "Start with cde_startFeature, then call cde_submitWork with the work of the current phase; "
    "cde_getFeatureStatus tells where a feature is. Errors are JSON with a code, suggestions and a docs link."
)


@app.callback()
def serve(
    project: Annotated[
        Path | None, typer.Option("--project", "-p", help="Default project directory (default: current).")
    ] = None,
    allow_root: Annotated[
        list[Path] | None,
        typer.Option("--allow-root", help="Another directory whose projects clients may use (repeatable)."),
    ] = None,
) -> None:
    """Run the MCP server on stdin/stdout until the client closes it."""
    # Our own program: its warnings go to stderr (the client's server log), never to stdout.
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        server = build_server(project or Path.cwd(), allow_root or ())
    except ModuleNotFoundError as exc:
        err_console.print(f"[red]cde-otel mcp needs the MCP SDK: pip install 'cde-otel[mcp]' ({exc})[/red]")
        raise typer.Exit(1) from None
    server.run("stdio")


def build_server(default_project: Path, allowed_roots: "Iterable[Path]" = ()) -> "MCPServer":
    """The MCP server with the workflow tools over a resilient repository, confined to the project and roots."""
    import anyio.to_thread
    from mcp.server.mcpserver import MCPServer
    from mcp.types import CallToolResult

    from cde_otel.cli._mcp_tools import WorkflowTools
    from cde_otel.errors import ErrorFormatter
    from cde_otel.health import cde_getHealth
    from cde_otel.resilience import ResilientProjectRepository

    tools = WorkflowTools(ResilientProjectRepository(), default_project, allowed_roots)
    server = MCPServer(SERVER_NAME, instructions=INSTRUCTIONS)

    @server.tool(name="cde_startFeature")
    async def start_feature(
        prompt: str, project_path: str | None = None, workflow_type: str = "default", name: str | None = None
    ) -> CallToolResult:
        """Start a feature (in its define phase) from the user's request; returns its id and phase."""
        return await _answer(lambda: tools.start_feature(prompt, project_path, workflow_type, name))

    @server.tool(name="cde_submitWork")
    async def submit_work(
        feature_id: str, phase: str, results: dict[str, Any] | None = None, project_path: str | None = None
    ) -> CallToolResult:
        """Submit the work of the feature's current phase; moves it to the next phase (review completes it)."""
        return await _answer(lambda: tools.submit_work(feature_id, phase, results, project_path))

    @server.tool(name="cde_getFeatureStatus")
    async def feature_status(feature_id: str | None = None, project_path: str | None = None) -> CallToolResult:
        """Phase and status of one feature, or of every feature of the project."""
        return await _answer(lambda: tools.feature_status(feature_id, project_path))

    @server.tool(name="cde_getHealth")
    async def get_health(project_path: str | None = None) -> str:
        """Health status of the project: checks, latency percentiles and alerts, as JSON."""
        from cde_otel.errors import CDEError

        try:
            root = tools.project_root(project_path)
        except CDEError as exc:
            return ErrorFormatter.format_json(exc)
        return await anyio.to_thread.run_sync(cde_getHealth, str(root))

    @server.resource("cde://errors/{code}", mime_type="text/plain")
    async def explain_error(code: str) -> str:
        """What an error code means, its causes and fixes."""
        return ErrorFormatter.explain(code.upper()) or f"unknown error code {code!r}"

    return server


# One tool call's load-change-save at a time in this server, as when the tools ran on the event
# loop: concurrent calls on one project would otherwise meet as E202 conflicts.
_serial = threading.Lock()


async def _answer(operation: Callable[[], dict[str, Any]]) -> "CallToolResult":
    """Runs one tool's file and lock work in a worker thread (the context, so the tool call's span
    and correlation id, goes along) and turns the result or error into the tool's answer."""
    import anyio.to_thread
    from mcp.types import CallToolResult, TextContent

    from cde_otel.errors import CDEError, ErrorFormatter

    def serially() -> dict[str, Any]:
        with _serial:
            return operation()

    try:
        result = await anyio.to_thread.run_sync(serially)
    except Exception as exc:
        # The agent gets the coded, friendly JSON; a traceback goes to the server's log only.
        if isinstance(exc, CDEError):
            logger.debug("tool call failed: %s", exc.code)
        else:
            logger.warning("tool call failed unexpectedly:\n%s", _scrubbed_traceback(exc))
        return CallToolResult(content=[TextContent(type="text", text=ErrorFormatter.format_json(exc))], is_error=True)
    return CallToolResult(content=[TextContent(type="text", text=json.dumps(result))], structured_content=result)


def _scrubbed_traceback(exc: BaseException) -> str:
    """The traceback as text with inline secrets masked (an exception message may quote a token)."""
    from cde_otel.redaction import scrub_text

    return scrub_text("".join(traceback.format_exception(exc))).rstrip()
