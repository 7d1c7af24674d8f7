"""Suite-wide rules and fixtures.

Rules, for every run (CI or not):

* A skipped test fails, and so does a skipped module or any other skip at collection time
  (it is reported as a collection error). A test that xfails fails too; pytest's ``xfail_strict``
  (pyproject.toml) already fails an unexpected pass. The one opt-out is explicit and per test:
  ``@pytest.mark.allow_skip_or_xfail(reason="why this may not run here")``.
* Warnings issued from our own package are errors (``filterwarnings`` in pyproject.toml).

Breadcrumbs start empty in every test; ``XDG_STATE_HOME`` points into the session's temporary directory (for
this process and every subprocess), so the embedded default never writes into the real user's
``~/.local/state`` — tests of that default read it from there (``state_home``).

Fixtures (the reusable parts live in :mod:`cde_otel.testing`, which users get too):

* ``clock`` — a :class:`~cde_otel.testing.ManualClock` at 0.
* ``telemetry`` — in-memory tracer and meter providers (:func:`~cde_otel.testing.capture_telemetry`).
* ``host`` — injected health readings (:class:`~cde_otel.testing.FakeHost`).
* ``new_project`` / ``make_project`` — an active project on disk: its repository and model / its directory.
* ``make_monitor`` — a HealthMonitor over fakes.
* ``clean_env`` — this environment without telemetry settings or trace context, for subprocesses.
* ``otlp_json_spans`` / ``otlp_json_points`` — the spans / one metric's data points of an OTLP-JSON
  lines file (the embedded default's traces.jsonl, metrics.jsonl).
* ``promtool`` — runs Prometheus' promtool.
* ``run_bench`` — a quick ``bench/run.py --json`` run, its common keys checked.
* ``venv_python`` — the interpreter of a cached MCP server venv (scripts/mcp-test-venvs.sh).
* ``orchestrator_server`` — the command and environment that serve the orchestrator fixture
  (tests/mcp_fixtures) over stdio from one of those venvs.
* ``run_session`` — runs a scenario against a stdio MCP server subprocess with the official client.
* ``record_mcp_sessions`` / ``recorded_mcp_sessions`` — the local OTLP-JSON files of real sessions of the
  orchestrator fixture, rotated between sessions (for ``cde-otel traces``, ``latency`` and ``export``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest

from cde_otel import breadcrumbs
from cde_otel.core import FileSystemProjectRepository, Project
from cde_otel.health import HealthMonitor
from cde_otel.settings import load_settings
from cde_otel.testing import CapturedTelemetry, FakeHost, ManualClock, capture_telemetry

ROOT = Path(__file__).resolve().parents[1]
MCP_FIXTURES = ROOT / "tests" / "mcp_fixtures"
OPT_OUT_MARKER = "allow_skip_or_xfail"

ProjectFactory = Callable[..., Path]
NewProject = Callable[..., tuple[FileSystemProjectRepository, Project]]
MonitorFactory = Callable[..., HealthMonitor]
EnvFactory = Callable[..., dict[str, str]]
SpanReader = Callable[[Path], Iterator[dict[str, Any]]]
Promtool = Callable[..., "subprocess.CompletedProcess[str]"]
T = TypeVar("T")


# -- the skip and xfail policy -------------------------------------------------------------
def _reason(longrepr: object) -> str:
    return str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)  # a skip's is (path, line, message)


def _opted_out(item: pytest.Item) -> bool:
    marker = item.get_closest_marker(OPT_OUT_MARKER)
    return marker is not None and bool(str(marker.kwargs.get("reason", "")).strip())


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    xfailed = hasattr(report, "wasxfail")
    if not (report.skipped or xfailed) or _opted_out(item):
        return report
    what = f"xfailed ({report.wasxfail})" if xfailed else f"skipped ({_reason(report.longrepr)})"
    report.outcome = "failed"
    report.longrepr = (
        f"{item.nodeid} {what}: this suite fails on every skip and xfail; mark the test "
        f"@pytest.mark.{OPT_OUT_MARKER}(reason=...) if it truly may not run here"
    )
    if xfailed:
        del report.wasxfail
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped:  # a module-level skip, importorskip, or a skip in a collection hook
        report.outcome = "failed"
        report.longrepr = (
            f"{report.nodeid} skipped at collection ({_reason(report.longrepr)}): this suite fails on every skip"
        )


@pytest.fixture(autouse=True)
def _fresh_breadcrumbs() -> None:
    breadcrumbs.clear()


@pytest.fixture(scope="session", autouse=True)
def state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The ``XDG_STATE_HOME`` of the whole session (the embedded default's files go below it)."""
    previous = os.environ.get("XDG_STATE_HOME")
    home = tmp_path_factory.mktemp("xdg-state")
    os.environ["XDG_STATE_HOME"] = str(home)
    yield home
    if previous is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = previous


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
def new_project(tmp_path: Path) -> NewProject:
    """``new_project(path=None, *, features=0)``: ``(repository, project)``, an ACTIVE project saved in
    ``path`` (made if missing; ``tmp_path/project`` by default) with that many features."""

    def make(path: Path | None = None, *, features: int = 0) -> tuple[FileSystemProjectRepository, Project]:
        project_dir = tmp_path / "project" if path is None else path
        project_dir.mkdir(parents=True, exist_ok=True)
        repo = FileSystemProjectRepository()
        project = repo.get_or_create(project_dir)
        project.activate()
        for index in range(features):
            project.start_feature(f"feature number {index}")
        repo.save(project)
        return repo, project

    return make


@pytest.fixture
def make_project(tmp_path: Path, new_project: NewProject) -> ProjectFactory:
    """``make_project(path=None, *, features=0)``: the directory of a :func:`new_project` project."""

    def make(path: Path | None = None, *, features: int = 0) -> Path:
        project_dir = tmp_path / "project" if path is None else path
        new_project(project_dir, features=features)
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


@pytest.fixture(scope="session")
def clean_env() -> EnvFactory:
    """``clean_env(**extra)``: this environment without telemetry settings or trace context, plus ``extra``."""

    def make(**extra: str) -> dict[str, str]:
        dropped = ("CDE_OTEL_", "OTEL_", "TRACEPARENT", "BAGGAGE")
        env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
        env.update(extra)
        return env

    return make


@pytest.fixture(scope="session")
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


@pytest.fixture(scope="session")
def otlp_json_logs() -> Callable[[Path], list[dict[str, Any]]]:
    """Every record of an OTLP-JSON logs file: ``scope``, ``body``, ``traceId``, ``spanId`` and flat ``attrs``."""

    def read(path: Path) -> list[dict[str, Any]]:
        records = []
        for line in path.read_text().splitlines():
            for resource_logs in json.loads(line)["resourceLogs"]:
                for scope_logs in resource_logs["scopeLogs"]:
                    for record in scope_logs["logRecords"]:
                        attributes = {a["key"]: next(iter(a["value"].values())) for a in record.get("attributes", [])}
                        records.append(
                            {
                                "scope": scope_logs["scope"]["name"],
                                "body": next(iter(record.get("body", {}).values()), None),
                                "attrs": attributes,
                                "traceId": record.get("traceId", ""),
                                "spanId": record.get("spanId", ""),
                            }
                        )
        return records

    return read


@pytest.fixture(scope="session")
def otlp_json_points() -> Callable[[Path, str], list[dict[str, Any]]]:
    """``otlp_json_points(path, metric)``: the data points of ``metric`` in an OTLP-JSON lines file
    (every export in it), each with flat ``attrs``; none when the file does not exist (yet)."""

    def read(path: Path, metric: str) -> list[dict[str, Any]]:
        points: list[dict[str, Any]] = []
        if not path.exists():
            return points
        for line in path.read_text().splitlines():
            for resource_metrics in json.loads(line)["resourceMetrics"]:
                for scope in resource_metrics["scopeMetrics"]:
                    for found in scope["metrics"]:
                        if found["name"] != metric:
                            continue
                        data = next(v for v in found.values() if isinstance(v, dict) and "dataPoints" in v)
                        for point in data["dataPoints"]:
                            point["attrs"] = {
                                a["key"]: next(iter(a["value"].values())) for a in point.get("attributes", [])
                            }
                            points.append(point)
        return points

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
    """``run_bench(only, goal_keys)``: ``bench/run.py --quick --json --only ONLY``, no errors, and for
    each of ``goal_keys`` a number and its goal entry (value, goal text, passed)."""

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
            assert isinstance(result[key], int | float), key
            entry = result["goals"][key]
            assert entry["value"] == result[key]
            assert isinstance(entry["goal"], str)
            assert entry["passed"] in (True, False, None)
        return result

    return run


# -- MCP servers ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def venv_python() -> Callable[[str], Path]:
    """``venv_python(name)``: the interpreter of a cached MCP server venv (``fastmcp_2_13``, ``fastmcp_4``,
    ``fastmcp_newest``, ``unconstrained``).

    The first call brings the venvs up to date with this checkout (scripts/mcp-test-venvs.sh is
    idempotent: a second or so when nothing changed), so a plain ``pytest`` never runs a stale
    cde-otel; a venv that cannot be made fails the test, never skips it.
    """
    venvs: dict[str, Path] = {}
    failure: list[str] = []  # the script's stderr when some venv could not be made (the others are listed)

    def find(name: str) -> Path:
        if not venvs and not failure:
            done = subprocess.run(
                ["bash", str(ROOT / "scripts" / "mcp-test-venvs.sh")],
                capture_output=True,
                text=True,
                timeout=1200,
                check=False,
            )
            if done.returncode != 0:
                failure.append(f"scripts/mcp-test-venvs.sh failed ({done.returncode}):\n{done.stderr[-3000:]}")
            for line in done.stdout.splitlines():
                key, _, value = line.partition("=")
                venvs[key.removeprefix("CDE_OTEL_VENV_").lower()] = Path(value)
        venv = venvs.get(name)
        if venv is None or not (venv / "bin" / "python").exists():
            pytest.fail(f"MCP test venv {name!r} missing ({venvs}): see scripts/mcp-test-venvs.sh\n{''.join(failure)}")
        _assert_tests_this_checkout(venv)
        return venv / "bin" / "python"

    return find


_INSTALLED_FROM = (
    "import json; from importlib.metadata import distribution; "
    "print(json.loads(distribution('cde-otel').read_text('direct_url.json'))['url'])"
)


def _assert_tests_this_checkout(venv: Path) -> None:
    """The venv's cde-otel was installed from this checkout (another checkout's venvs test its own code)."""
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", _INSTALLED_FROM], capture_output=True, text=True, timeout=60, check=False
    )
    if where.stdout.strip() != ROOT.as_uri():
        pytest.fail(f"{venv} has cde-otel from {where.stdout.strip() or where.stderr[-500:]}, not {ROOT}")


@pytest.fixture(scope="session")
def orchestrator_server(venv_python: Callable[[str], Path]) -> Callable[[str], tuple[str, list[str], dict[str, str]]]:
    """``orchestrator_server(venv)``: ``(command, args, env)`` serving the orchestrator fixture
    (tests/mcp_fixtures, upstream's module layout) over stdio from that venv; ``env`` holds what
    it needs on top of the caller's environment."""

    def command(venv: str) -> tuple[str, list[str], dict[str, str]]:
        script = MCP_FIXTURES / "orchestrator_server.py"
        return str(venv_python(venv)), [str(script)], {"PYTHONPATH": str(MCP_FIXTURES)}

    return command


@pytest.fixture(scope="session")
def run_session() -> Callable[..., Any]:
    """``run_session(command, args, env, cwd, scenario)``: ``await scenario(session)`` against a stdio
    server subprocess, with the official client's session initialized; returns what the scenario
    returns. The server's stderr goes to ``cwd/server.stderr``; two minutes at most."""
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    def run(
        command: str, args: list[str], env: dict[str, str], cwd: Path, scenario: Callable[[Any], Awaitable[T]]
    ) -> T:
        async def main() -> T:
            params = StdioServerParameters(command=command, args=args, env=env, cwd=cwd)
            with (cwd / "server.stderr").open("w") as errlog:
                async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
                    with anyio.fail_after(120):
                        await session.initialize()
                        return await scenario(session)

        return anyio.run(main)

    return run


# -- the local telemetry files of real MCP sessions (cde-otel traces / latency / export) -------------
@dataclass(frozen=True)
class RecordedSessions:
    """What ``record_mcp_sessions`` produced: the local directory and what the client did."""

    local: Path
    service: str
    feature_ids: list[str]
    calls: dict[str, int]
    rotated: list[str]


@pytest.fixture(scope="session")
def record_mcp_sessions(
    tmp_path_factory: pytest.TempPathFactory,
    orchestrator_server: Callable[[str], tuple[str, list[str], dict[str, str]]],
    run_session: Callable[..., Any],
    clean_env: EnvFactory,
) -> Callable[..., RecordedSessions]:
    """``record_mcp_sessions(features, sessions=2, service=...)``: sessions of the orchestrator fixture
    (fastmcp 2.13) driven by the official client, telemetry kept locally; between two sessions the
    files are rotated as the telemetry package does (``S.jsonl`` renamed to ``S.<stamp>.jsonl``, closed),
    so readers see a rotated layout written by real servers.

    Each session: ``features`` features (cde_startFeature, then cde_submitWork define and decompose),
    then one cde_submitWork of an unknown feature (E104)."""

    def record(features: int, sessions: int = 2, service: str = "cde-recorded-fixture") -> RecordedSessions:
        work = tmp_path_factory.mktemp("recorded-mcp")
        local, project = work / "telemetry", work / "project"
        project.mkdir()
        command, args, extra = orchestrator_server("fastmcp_2_13")
        env = clean_env(
            CDE_OTEL_ENABLED="true",
            CDE_OTEL_LOCAL_DIR=str(local),
            OTEL_SERVICE_NAME=service,
            OTEL_METRIC_EXPORT_INTERVAL="300",
            OTEL_BSP_SCHEDULE_DELAY="100",
            OTEL_BSP_MAX_EXPORT_BATCH_SIZE="8",  # many lines per file, whatever the machine's speed
        )
        env.pop("PYTHONPATH", None)
        env.update(extra)
        feature_ids: list[str] = []
        calls = {"cde_startFeature": 0, "cde_submitWork": 0}
        rotated: list[str] = []
        where = str(project)

        async def scenario(session: Any) -> None:
            for index in range(features):
                started = await session.call_tool(
                    "cde_startFeature", {"user_prompt": f"Feature {index}", "project_path": where}
                )
                assert not started.is_error, started.content
                feature_ids.append(json.loads(started.content[0].text)["feature_id"])
                calls["cde_startFeature"] += 1
                for phase in ("define", "decompose"):
                    arguments = {"feature_id": feature_ids[-1], "phase_id": phase, "results": {"n": 1}}
                    done = await session.call_tool("cde_submitWork", {**arguments, "project_path": where})
                    assert not done.is_error, done.content
                    calls["cde_submitWork"] += 1
            arguments = {"feature_id": "no-such-feature", "phase_id": "define", "results": {}, "project_path": where}
            failed = await session.call_tool("cde_submitWork", arguments)
            assert "E104" in failed.content[0].text
            calls["cde_submitWork"] += 1

        for number in range(sessions):
            run_session(command, args, env, work, scenario)  # returns once the server exited (flushed, closed)
            if number < sessions - 1:
                for signal in ("traces", "metrics", "logs"):
                    target = local / f"{signal}.2026{number:04d}.jsonl"
                    (local / f"{signal}.jsonl").rename(target)
                    rotated.append(target.name)
        return RecordedSessions(local, service, feature_ids, calls, rotated)

    return record


@pytest.fixture(scope="session")
def recorded_mcp_sessions(record_mcp_sessions: Callable[..., RecordedSessions]) -> RecordedSessions:
    """Two sessions of ten features each, rotated between them (for cde-otel traces/latency/export)."""
    return record_mcp_sessions(10)
