"""Suite-wide rules and fixtures.

Rules: in CI (or with CDE_OTEL_FAIL_ON_SKIP=1) a skipped test fails the run; breadcrumbs
start empty in every test.

Fixtures (the reusable parts live in :mod:`cde_otel.testing`, which users get too):

* ``clock`` — a :class:`~cde_otel.testing.ManualClock` at 0.
* ``telemetry`` — in-memory tracer and meter providers (:func:`~cde_otel.testing.capture_telemetry`).
* ``host`` — injected health readings (:class:`~cde_otel.testing.FakeHost`).
* ``make_project`` / ``make_monitor`` — an active project on disk / a HealthMonitor over fakes.
* ``clean_env`` — this environment without telemetry settings or trace context, for subprocesses.
* ``otlp_json_spans`` — the spans of an OTLP-JSON lines file (the embedded default's traces.jsonl).
* ``promtool`` — runs Prometheus' promtool.
* ``run_bench`` — a quick ``bench/run.py --json`` run, its common keys checked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cde_otel import breadcrumbs
from cde_otel.core import FileSystemProjectRepository
from cde_otel.health import HealthMonitor
from cde_otel.settings import load_settings
from cde_otel.testing import CapturedTelemetry, FakeHost, ManualClock, capture_telemetry

ROOT = Path(__file__).resolve().parents[1]
_FAIL_ON_SKIP = os.environ.get("CI", "").lower() == "true" or os.environ.get("CDE_OTEL_FAIL_ON_SKIP") == "1"
_skipped: list[str] = []

ProjectFactory = Callable[..., Path]
MonitorFactory = Callable[..., HealthMonitor]
EnvFactory = Callable[..., dict[str, str]]
SpanReader = Callable[[Path], Iterator[dict[str, Any]]]
Promtool = Callable[..., "subprocess.CompletedProcess[str]"]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _FAIL_ON_SKIP and _skipped:
        session.config.get_terminal_writer().line(
            f"FAILED: {len(_skipped)} test(s) skipped, and skips are failures here: {_skipped}", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _fresh_breadcrumbs() -> None:
    breadcrumbs.clear()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def telemetry() -> Iterator[CapturedTelemetry]:
    captured = capture_telemetry()
    yield captured
    captured.shutdown()


@pytest.fixture
def host() -> FakeHost:
    return FakeHost()


@pytest.fixture
def make_project(tmp_path: Path) -> ProjectFactory:
    """``make_project(features=0)``: an ACTIVE project saved in ``tmp_path/project`` with that many features."""

    def make(*, features: int = 0) -> Path:
        project_dir = tmp_path / "project"
        project_dir.mkdir()
        repo = FileSystemProjectRepository()
        project = repo.get_or_create(project_dir)
        project.activate()
        for index in range(features):
            project.start_feature(f"feature number {index}")
        repo.save(project)
        return project_dir

    return make


@pytest.fixture
def make_monitor(host: FakeHost, clock: ManualClock) -> MonitorFactory:
    """``make_monitor(project, recorded=None, **settings)``: a HealthMonitor reading ``host`` on ``clock``.

    ``recorded``: the CapturedTelemetry whose duration histogram the monitor reads (an empty one by default).
    """

    def make(project: Path, recorded: CapturedTelemetry | None = None, **settings: Any) -> HealthMonitor:
        return HealthMonitor(
            project,
            metric_reader=(recorded or capture_telemetry()).metric_reader,
            settings=load_settings({}, **settings),
            clock=clock,
            **host.probes(),
        )

    return make


@pytest.fixture
def clean_env() -> EnvFactory:
    """``clean_env(**extra)``: this environment without telemetry settings or trace context, plus ``extra``."""

    def make(**extra: str) -> dict[str, str]:
        dropped = ("CDE_OTEL_", "OTEL_", "TRACEPARENT", "BAGGAGE")
        env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
        env.update(extra)
        return env

    return make


@pytest.fixture
def otlp_json_spans() -> SpanReader:
    """Spans of an OTLP-JSON lines file, each with flat ``attrs`` and its ``resource`` attributes."""

    def read(path: Path) -> Iterator[dict[str, Any]]:
        for line in path.read_text().splitlines():
            for resource_spans in json.loads(line)["resourceSpans"]:
                resource = {a["key"]: a["value"] for a in resource_spans["resource"]["attributes"]}
                for scope in resource_spans["scopeSpans"]:
                    for span in scope["spans"]:
                        span["attrs"] = {a["key"]: next(iter(a["value"].values())) for a in span.get("attributes", [])}
                        span["resource"] = resource
                        yield span

    return read


@pytest.fixture
def promtool() -> Promtool:
    """``promtool(*args)``: Debian's ``prometheus`` package's promtool, or ``CDE_OTEL_PROMTOOL_BIN``."""
    found = os.environ.get("CDE_OTEL_PROMTOOL_BIN") or shutil.which("promtool")
    assert found, (
        "promtool is required (apt-get install --no-install-recommends prometheus, "
        "or scripts/install-backends.sh; or set CDE_OTEL_PROMTOOL_BIN)"
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([found, *args], capture_output=True, text=True, timeout=60, check=False)

    return run


@pytest.fixture
def run_bench() -> Callable[..., dict[str, Any]]:
    """``run_bench(only, goal_keys)``: ``bench/run.py --quick --json --only ONLY``, no errors, and a
    goal entry (value, goal text, passed) for each of ``goal_keys``."""

    def run(only: str, goal_keys: list[str]) -> dict[str, Any]:
        proc = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--json", "--only", only],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        result: dict[str, Any] = json.loads(proc.stdout)
        assert result["errors"] == {}
        assert result["quick"] is True
        for key in goal_keys:
            entry = result["goals"][key]
            assert entry["value"] == result[key]
            assert isinstance(entry["goal"], str)
            assert entry["passed"] in (True, False, None)
        return result

    return run
