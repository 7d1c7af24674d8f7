"""``cde-otel mcp``: its tools do their file work off the event loop, and a surprise is logged, scrubbed.

The server end to end (a real client over stdio, the trace shape) is in test_mcp_servers.py.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from cde_otel.cli.mcp import _answer, build_server
from cde_otel.errors import error_for


def _run(operation: Any) -> Any:
    async def main() -> Any:
        return await _answer(operation)

    return anyio.run(main)


def test_a_tool_does_its_work_in_a_worker_thread_and_the_loop_keeps_serving(tmp_path: Path) -> None:
    """While one tool call waits on the state lock, the event loop answers another request."""
    server = build_server(tmp_path)
    release = threading.Event()
    seen: dict[str, Any] = {}

    async def main() -> None:
        async with Client(server) as client:
            started = await client.call_tool("cde_startFeature", {"prompt": "Add login", "project_path": str(tmp_path)})
            feature_id = json.loads(started.content[0].text)["feature_id"]

            def blocked_status() -> dict[str, Any]:
                seen["thread"] = threading.current_thread()
                release.wait(30)  # a slow disk: the loop must not wait with it
                return {"feature_id": feature_id}

            async with anyio.create_task_group() as group:
                group.start_soon(_answer, blocked_status)
                with anyio.fail_after(10):
                    listed = await client.list_tools()  # served while the worker is blocked
                seen["tools"] = {t.name for t in listed.tools}
                release.set()

    anyio.run(main)
    assert seen["thread"] is not threading.main_thread()
    assert "cde_submitWork" in seen["tools"]


def test_an_unexpected_error_is_logged_at_warning_with_its_traceback_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("upstream rejected password=hunter2 and Bearer abcdefgh12345678")

    with caplog.at_level(logging.DEBUG, logger="cde_otel.mcp"):
        answer = _run(broken)

    assert answer.is_error
    assert json.loads(answer.content[0].text)["code"]  # the agent still gets the coded JSON
    [record] = [r for r in caplog.records if r.name == "cde_otel.mcp"]
    assert record.levelno == logging.WARNING
    logged = record.getMessage()
    assert "Traceback (most recent call last)" in logged and "RuntimeError" in logged
    assert "in broken" in logged  # the frame is there...
    assert "hunter2" not in logged and "abcdefgh12345678" not in logged  # ...the secrets are not
    assert record.exc_info is None  # nothing unscrubbed for a handler to format


def test_a_coded_error_is_the_agents_answer_not_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    def unknown_feature() -> dict[str, Any]:
        raise error_for("E104", feature_id="nope")

    with caplog.at_level(logging.DEBUG, logger="cde_otel.mcp"):
        answer = _run(unknown_feature)

    assert json.loads(answer.content[0].text)["code"] == "E104"
    assert [r.levelno for r in caplog.records if r.name == "cde_otel.mcp"] == [logging.DEBUG]
