"""The fixture orchestrator, laid out like the upstream ``server.py``.

Environment: ``CDE_FIXTURE_FRAMEWORK`` = ``fastmcp`` (standalone FastMCP, default) or ``mcp``
(the official SDK's own server: 1.x's FastMCP, 2.x's MCPServer); ``CDE_FIXTURE_IMPORT_ORDER=late``
imports the framework after the orchestrator package (and so after cde-otel has started) instead
of before. Run as a script it serves stdio, or streamable HTTP on 127.0.0.1 with
``CDE_FIXTURE_HTTP_PORT`` (the SDK servers; standalone FastMCP is served over HTTP by
``fastmcp run orchestrator_server.py:app --transport http``).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any


def _framework() -> Any:
    if os.environ.get("CDE_FIXTURE_FRAMEWORK", "fastmcp") == "mcp":
        try:  # mcp 1.x (the fastmcp 2.13 venv)
            from mcp.server.fastmcp import FastMCP as SdkFastMCP  # type: ignore[attr-defined]
        except ImportError:  # mcp 2.x
            from mcp.server.mcpserver import MCPServer as SdkFastMCP

        return SdkFastMCP
    from fastmcp import FastMCP

    return FastMCP


if os.environ.get("CDE_FIXTURE_IMPORT_ORDER") != "late":
    FastMCP = _framework()

from cde_orchestrator.adapters.filesystem_project_repository import FileSystemProjectRepository  # noqa: E402
from cde_orchestrator.domain.entities import PHASES  # noqa: E402
from cde_orchestrator.domain.exceptions import CDEError, FeatureNotFoundError  # noqa: E402
from cde_orchestrator.infrastructure.logging import configure_logging, get_logger  # noqa: E402

if os.environ.get("CDE_FIXTURE_IMPORT_ORDER") == "late":
    FastMCP = _framework()

configure_logging()
logger = get_logger("cde_orchestrator.server")
repository = FileSystemProjectRepository()


def tool_handler(func: Callable[..., Awaitable[str]]) -> Callable[..., Awaitable[str]]:
    """Domain errors come back as the upstream envelope, a normal (not isError) result."""

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> str:
        try:
            return await func(*args, **kwargs)
        except CDEError as exc:
            logger.error("Domain error in %s: %s", func.__name__, exc.message)
            return json.dumps(
                {
                    "status": "error",
                    "error_type": type(exc).__name__,
                    "error_code": exc.code,
                    "message": exc.message,
                    "recoverable": exc.recoverable,
                }
            )

    return wrapper


def dict_tool_handler(func: Callable[..., Awaitable[str]]) -> Callable[..., Awaitable[str]]:
    """As upstream's handler does: the error envelope as a dict from a tool declared to return a
    str, so the framework's output validation fails on it (fastmcp 2.13 answers isError with an
    "Output validation error" quoting the envelope; newer FastMCP wraps it as {"result": ...})."""

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await func(*args, **kwargs)
        except CDEError as exc:
            return {"status": "error", "error_type": type(exc).__name__, "error_code": exc.code, "message": exc.message}

    return wrapper


def _path(project_path: str) -> str:
    return str(Path.cwd()) if project_path == "." else project_path


app = FastMCP("CDE Orchestrator fixture")


@app.tool()
@tool_handler
async def cde_startFeature(user_prompt: str, project_path: str = ".", workflow_type: str = "standard") -> str:
    """Start a feature in the project."""
    project = await repository.get_or_create(_path(project_path))
    project.activate()
    feature = project.start_feature(user_prompt, workflow_type)
    await repository.save(project)
    logger.info("Started feature %s", feature.id)
    return json.dumps({"status": "success", "feature_id": feature.id, "phase": feature.current_phase})


@app.tool()
@tool_handler
async def cde_submitWork(feature_id: str, phase_id: str, results: dict[str, Any], project_path: str = ".") -> str:
    """Submit a phase's results and advance the workflow."""
    path = _path(project_path)
    project = await repository.get_or_create(path)
    feature = project.get_feature(feature_id)
    if feature is None:
        raise FeatureNotFoundError(feature_id, path)
    if phase_id == PHASES[-1]:
        feature.complete()
        await repository.save(project)
        return json.dumps({"status": "completed", "feature_id": feature.id})
    feature.advance_phase(PHASES[PHASES.index(phase_id) + 1], results)
    await repository.save(project)
    logger.info("Feature %s moved to %s", feature.id, feature.current_phase)
    return json.dumps({"status": "ok", "phase": feature.current_phase})


@app.tool()
async def cde_getFeatureStatus(feature_id: str, project_path: str = ".") -> str:
    """A feature's phase; an unknown feature raises (the framework answers isError)."""
    project = await repository.get_or_create(_path(project_path))
    feature = project.get_feature(feature_id)
    if feature is None:
        raise LookupError(f"no feature {feature_id}")
    return json.dumps({"feature_id": feature.id, "phase": feature.current_phase, "status": feature.status.value})


@app.tool()
@dict_tool_handler
async def cde_getFeatureSummary(feature_id: str, project_path: str = ".") -> str:
    """A feature's summary; an unknown feature answers upstream's envelope as a dict."""
    path = _path(project_path)
    project = await repository.get_or_create(path)
    feature = project.get_feature(feature_id)
    if feature is None:
        raise FeatureNotFoundError(feature_id, path)
    return json.dumps({"feature_id": feature.id, "phase": feature.current_phase})


@app.prompt()
def cde_phasePrompt(phase: str) -> str:
    """The instructions of a phase."""
    return f"Do the {phase} phase."


@app.resource("cde://workflow/phases")
def phases() -> str:
    """The workflow's phases."""
    return json.dumps(list(PHASES))


def _serve_http(port: int) -> None:
    """The SDK's own server over streamable HTTP (2.x takes host and port in run(), 1.x in settings)."""
    if hasattr(app.settings, "port"):
        app.settings.host, app.settings.port = "127.0.0.1", port
        app.run(transport="streamable-http")
    else:
        app.run(transport="streamable-http", host="127.0.0.1", port=port)


if __name__ == "__main__":
    if os.environ.get("CDE_FIXTURE_HTTP_PORT"):
        _serve_http(int(os.environ["CDE_FIXTURE_HTTP_PORT"]))
    else:
        app.run()
