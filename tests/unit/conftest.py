"""Fixtures of the unit tests that need more than the suite-wide ones (tests/conftest.py).

* ``otel`` — :class:`~cde_otel.instrumentation.CDEInstrumentor` instrumented into fresh in-memory
  providers (default settings, no operation log events), uninstrumented after the test.

* ``global_telemetry`` — in-memory providers installed once as the process's global tracer
  provider: the mcp SDK 2.x traces through the global provider (its server span, and the client
  span whose context it injects into ``params._meta``), so the tests that look at those spans
  share it. Clear its spans first (``global_telemetry.span_exporter.clear()``).

* ``health_serve`` — ``with health_serve(cli, project, env) as process``: ``cli health serve --port 0
  --path project`` as a subprocess with ``env`` on top of this environment, announced on stdout and
  ready (``GET /health/ready`` is 200); killed on the way out if it still runs.

* ``recorded_mcp_sessions`` — the local OTLP-JSON files of two real sessions of the orchestrator
  fixture, rotated between them (:class:`RecordedSessions`), for ``cde-otel traces/latency/export``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

from cde_otel.instrumentation import CDEInstrumentor
from cde_otel.settings import load_settings
from cde_otel.testing import CapturedTelemetry, capture_telemetry


@pytest.fixture
def otel() -> Iterator[CapturedTelemetry]:
    telemetry = capture_telemetry()
    CDEInstrumentor().instrument(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        settings=load_settings({}),
        log_operations=False,
    )
    try:
        yield telemetry
    finally:
        CDEInstrumentor().uninstrument()
        telemetry.shutdown()


@pytest.fixture(scope="session")
def global_telemetry() -> Iterator[CapturedTelemetry]:
    captured = capture_telemetry()
    trace.set_tracer_provider(captured.tracer_provider)  # the API allows this once per process
    assert trace.get_tracer_provider() is captured.tracer_provider, "a global tracer provider was set earlier"
    yield captured
    captured.shutdown()


HealthServe = Callable[[list[str], Path, dict[str, str]], AbstractContextManager["subprocess.Popen[str]"]]


@pytest.fixture
def health_serve() -> HealthServe:
    @contextmanager
    def serve(cli: list[str], project: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
        process = subprocess.Popen(
            [*cli, "health", "serve", "--port", "0", "--path", str(project)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env},
        )  # fmt: skip
        try:
            assert process.stdout is not None
            line = process.stdout.readline()  # blocks until the server announces itself
            match = re.search(r"http://127\.0\.0\.1:(\d+)/health", line)
            assert match, line + (process.stderr.read() if process.stderr else "")
            with urllib.request.urlopen(f"http://127.0.0.1:{match[1]}/health/ready", timeout=5) as response:
                assert response.status == 200
            yield process
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()

    return serve


# -- the local telemetry files of real MCP sessions (cde-otel traces / latency / export) -------------
@dataclass(frozen=True)
class RecordedSessions:
    """What ``recorded_mcp_sessions`` produced: the local directory and what the client did."""

    local: Path
    service: str
    feature_ids: list[str]
    calls: dict[str, int]
    rotated: list[str]


ROTATED_SESSIONS = 2
FEATURES_PER_SESSION = 10


@pytest.fixture(scope="session")
def recorded_mcp_sessions(
    tmp_path_factory: pytest.TempPathFactory,
    orchestrator_server: Callable[[str], tuple[str, list[str], dict[str, str]]],
    run_session: Callable[..., Any],
    clean_env: Callable[..., dict[str, str]],
) -> RecordedSessions:
    """Two sessions of the orchestrator fixture (fastmcp 2.13) driven by the official client, telemetry
    kept locally; between them the files are rotated as the telemetry package does (``S.jsonl`` renamed
    to ``S.<stamp>.jsonl``, closed), so readers see a rotated layout written by real servers.

    Each session: FEATURES_PER_SESSION features (cde_startFeature, then cde_submitWork define and
    decompose), and one cde_submitWork of an unknown feature (E104)."""
    work = tmp_path_factory.mktemp("recorded-mcp")
    local, project = work / "telemetry", work / "project"
    project.mkdir()
    service = "cde-recorded-fixture"
    command, args, extra = orchestrator_server("fastmcp_2_13")
    env = clean_env(
        CDE_OTEL_ENABLED="true",
        CDE_OTEL_LOCAL_DIR=str(local),
        OTEL_SERVICE_NAME=service,
        OTEL_METRIC_EXPORT_INTERVAL="300",
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    env.pop("PYTHONPATH", None)
    env.update(extra)
    feature_ids: list[str] = []
    calls = {"cde_startFeature": 0, "cde_submitWork": 0}
    rotated: list[str] = []

    async def scenario(session: Any) -> None:
        for index in range(FEATURES_PER_SESSION):
            started = await session.call_tool(
                "cde_startFeature", {"user_prompt": f"Feature {index}", "project_path": str(project)}
            )
            assert not started.is_error, started.content
            feature_ids.append(json.loads(started.content[0].text)["feature_id"])
            calls["cde_startFeature"] += 1
            for phase in ("define", "decompose"):
                done = await session.call_tool(
                    "cde_submitWork",
                    {
                        "feature_id": feature_ids[-1],
                        "phase_id": phase,
                        "results": {"n": 1},
                        "project_path": str(project),
                    },
                )
                assert not done.is_error, done.content
                calls["cde_submitWork"] += 1
        failed = await session.call_tool(
            "cde_submitWork",
            {"feature_id": "no-such-feature", "phase_id": "define", "results": {}, "project_path": str(project)},
        )
        assert "E104" in failed.content[0].text
        calls["cde_submitWork"] += 1

    for number in range(ROTATED_SESSIONS):
        run_session(command, args, env, work, scenario)  # returns after the server exited (flushed, closed)
        if number < ROTATED_SESSIONS - 1:
            for signal in ("traces", "metrics", "logs"):
                target = local / f"{signal}.2026{number:04d}.jsonl"
                (local / f"{signal}.jsonl").rename(target)
                rotated.append(target.name)
    return RecordedSessions(local, service, feature_ids, calls, rotated)
