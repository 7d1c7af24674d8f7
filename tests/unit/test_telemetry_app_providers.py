"""Start-up: the application's providers are used, not replaced; one line says so.

Real processes with ``CDE_OTEL_ENABLED=true``: under the real ``opentelemetry-instrument`` (its
distro sets the providers up, its loader instruments our entry points), and an application that
sets its own providers before cde-otel starts. Telemetry must reach the application's exporters,
with no "Overriding of current TracerProvider" warning, no operation instrumented twice, nothing
written by cde-otel itself, and exactly one start-up line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cde_otel.semconv import ATTR_CORRELATION_ID, METRIC_OPERATION_DURATION

EnvFactory = Callable[..., dict[str, str]]
SpanReader = Callable[[Path], Iterator[dict[str, Any]]]
PointReader = Callable[[Path, str], list[dict[str, Any]]]

STARTUP = "cde-otel: telemetry on"
NOISE = ("Overriding of current", "Attempting to instrument", "Attempting to uninstrument", "not enabled", "Traceback")

# The work: one project, one feature, and a record of the application's own, through its logger.
WORK = textwrap.dedent(
    """
    import logging, sys
    from cde_otel.core import FileSystemProjectRepository

    repo = FileSystemProjectRepository()
    project = repo.get_or_create(sys.argv[1])
    project.activate()
    project.start_feature("Add login")
    repo.save(project)
    logging.getLogger("app").warning("the application's own record")
    """
)


def _otlp_lines(stdout: str) -> dict[str, list[dict[str, Any]]]:
    """The OTLP-JSON documents the application's ``otlp_json_file`` exporters printed, by kind."""
    found: dict[str, list[dict[str, Any]]] = {"resourceSpans": [], "resourceMetrics": [], "resourceLogs": []}
    for line in stdout.splitlines():
        if line.startswith("{"):
            document = json.loads(line)
            for kind, items in document.items():
                found[kind].extend(items)
    return found


def _span_names(resource_spans: list[dict[str, Any]]) -> list[str]:
    return [s["name"] for rs in resource_spans for scope in rs["scopeSpans"] for s in scope["spans"]]


def _metric_names(resource_metrics: list[dict[str, Any]]) -> set[str]:
    return {m["name"] for rm in resource_metrics for scope in rm["scopeMetrics"] for m in scope["metrics"]}


def _log_bodies(resource_logs: list[dict[str, Any]]) -> list[str]:
    return [
        str(record.get("body", {}).get("stringValue", ""))
        for rl in resource_logs
        for scope in rl["scopeLogs"]
        for record in scope["logRecords"]
    ]


def _run(tmp_path: Path, code: str, *args: Path | str, env: dict[str, str], launcher: bool = False) -> Any:
    """Runs ``code`` as ``tmp_path/app.py`` (under ``opentelemetry-instrument`` with ``launcher``) in
    ``tmp_path``; the process must succeed."""
    (tmp_path / "app.py").write_text(code)
    command = [sys.executable, str(tmp_path / "app.py"), *map(str, args)]
    if launcher:
        command.insert(0, str(Path(sys.executable).with_name("opentelemetry-instrument")))
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _startup_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if STARTUP in line]


def _assert_quiet_apart_from_one_startup_line(stderr: str) -> str:
    for noise in NOISE:
        assert noise not in stderr, stderr[-3000:]
    [line] = _startup_lines(stderr)
    assert line.startswith(STARTUP), line
    return line


# The launcher bridges stdlib records itself: by the logging instrumentation's handler (the default),
# or by the SDK's deprecated one. Either is added to root after configure() ran.
LAUNCHER_LOG_HANDLERS = [{}, {"OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true"}]


@pytest.mark.parametrize("handler_env", LAUNCHER_LOG_HANDLERS, ids=["instrumentation-handler", "sdk-handler"])
def test_under_opentelemetry_instrument_the_launchers_providers_and_instrumentation_are_used(
    tmp_path: Path, clean_env: EnvFactory, state_home: Path, handler_env: dict[str, str]
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    state = tmp_path / "state"
    env = clean_env(
        CDE_OTEL_ENABLED="true",
        OTEL_SERVICE_NAME="launched",
        OTEL_TRACES_EXPORTER="otlp_json_file",  # the launcher's exporters print OTLP-JSON on stdout
        OTEL_METRICS_EXPORTER="otlp_json_file",
        OTEL_LOGS_EXPORTER="otlp_json_file",
        XDG_STATE_HOME=str(state),
        **handler_env,
    )
    done = _run(tmp_path, WORK, project, env=env, launcher=True)

    line = _assert_quiet_apart_from_one_startup_line(done.stderr)
    assert "for service launched: using the application's providers (traces, metrics, logs)" in line
    assert "instrumented: CDE operations, MCP requests, thread context (by opentelemetry-instrument)" in line
    assert STARTUP not in done.stdout
    exported = _otlp_lines(done.stdout)
    names = _span_names(exported["resourceSpans"])
    assert names.count("Project.start_feature") == 1, names  # instrumented once, by the launcher
    assert {"FileSystemProjectRepository.get_or_create", "FileSystemProjectRepository.save"} <= set(names)
    spans = [s for rs in exported["resourceSpans"] for scope in rs["scopeSpans"] for s in scope["spans"]]
    assert all(any(a["key"] == ATTR_CORRELATION_ID for a in s["attributes"]) for s in spans)
    assert METRIC_OPERATION_DURATION in _metric_names(exported["resourceMetrics"])
    # Once: the launcher's handler sends it, our bridge stands aside.
    assert _log_bodies(exported["resourceLogs"]).count("the application's own record") == 1
    assert not state.exists()  # nothing of cde-otel's own: no embedded default files
    assert [p.name for p in project.iterdir()] == [".cde"]


APP_WITH_PROVIDERS = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from opentelemetry import _logs, metrics, trace
    from opentelemetry.exporter.otlp.json.file import FileMetricExporter, FileSpanExporter
    from opentelemetry.exporter.otlp.json.file._log_exporter import FileLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    out = Path(sys.argv[2])
    signals = sys.argv[3].split(",")
    resource = Resource.create({"service.name": "my-app"})
    if "traces" in signals:
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(BatchSpanProcessor(FileSpanExporter(out / "app-traces.jsonl")))
        trace.set_tracer_provider(tracer_provider)
    if "metrics" in signals:
        reader = PeriodicExportingMetricReader(FileMetricExporter(out / "app-metrics.jsonl"), 60_000)
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
    if "logs" in signals:
        logger_provider = LoggerProvider(resource=resource)
        logger_provider.add_log_record_processor(BatchLogRecordProcessor(FileLogExporter(out / "app-logs.jsonl")))
        _logs.set_logger_provider(logger_provider)
    """
)

HEALTH_AND_SHUTDOWN = textwrap.dedent(
    """
    import cde_otel
    from cde_otel.health import operation_stats
    from cde_otel.health.sources import telemetry_export_status, telemetry_metric_reader

    stats = operation_stats(telemetry_metric_reader())
    print("HEALTH " + json.dumps({"count": stats["Project.start_feature"].count,
                                  "p99": stats["Project.start_feature"].p99,
                                  "export": telemetry_export_status()}), flush=True)
    cde_otel.shutdown()
    print("AFTER " + json.dumps({"reader": telemetry_metric_reader() is not None}), flush=True)
    """
)


def _run_app(tmp_path: Path, clean_env: EnvFactory, signals: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    project = tmp_path / "project"
    project.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    state = tmp_path / "state"
    env = clean_env(CDE_OTEL_ENABLED="true", XDG_STATE_HOME=str(state))
    done = _run(tmp_path, APP_WITH_PROVIDERS + WORK + HEALTH_AND_SHUTDOWN, project, out, signals, env=env)
    return done, state


def _span_seconds(spans: list[dict[str, Any]], name: str) -> float:
    """The duration of the one span called ``name``: the histogram records the same interval."""
    (span,) = (s for s in spans if s["name"] == name)
    return (int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"])) / 1e9


def _printed(stdout: str, tag: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(next(line for line in stdout.splitlines() if line.startswith(tag))[len(tag) :])
    return found


def test_an_application_that_set_its_providers_first_gets_our_telemetry_in_its_exporters(
    tmp_path: Path, clean_env: EnvFactory, otlp_json_spans: SpanReader, otlp_json_points: PointReader
) -> None:
    done, state = _run_app(tmp_path, clean_env, "traces,metrics,logs")

    line = _assert_quiet_apart_from_one_startup_line(done.stderr)
    assert "for service my-app: using the application's providers (traces, metrics, logs)" in line
    assert "instrumented: CDE operations, MCP requests, thread context (" in line  # ours, not the launcher's
    out = tmp_path / "out"
    spans = list(otlp_json_spans(out / "app-traces.jsonl"))
    assert [s["name"] for s in spans].count("Project.start_feature") == 1
    points = otlp_json_points(out / "app-metrics.jsonl", METRIC_OPERATION_DURATION)
    assert points and "bucketCounts" in points[0]  # the app's provider: our advisory (explicit) buckets
    assert "the application's own record" in (out / "app-logs.jsonl").read_text()
    assert not state.exists()
    # Health reads its own reader on the application's MeterProvider, with our exponential aggregation.
    health = _printed(done.stdout, "HEALTH ")
    assert health["count"] == 1
    assert health["p99"] == pytest.approx(_span_seconds(spans, "Project.start_feature"), rel=0.01)  # one value
    assert health["export"] == "application"
    assert _printed(done.stdout, "AFTER ") == {"reader": False}  # shutdown() took it off again


def test_only_the_signals_the_application_set_are_its_the_others_are_ours(
    tmp_path: Path, clean_env: EnvFactory, otlp_json_spans: SpanReader, otlp_json_points: PointReader
) -> None:
    done, state = _run_app(tmp_path, clean_env, "traces")

    line = _assert_quiet_apart_from_one_startup_line(done.stderr)
    local = state / "cde-otel" / "my-app"  # the application's resource names the service
    assert f"traces -> the application's provider; metrics and logs -> local OTLP-JSON files in {local};" in line
    spans = list(otlp_json_spans(tmp_path / "out" / "app-traces.jsonl"))
    assert [s["name"] for s in spans].count("Project.start_feature") == 1
    assert not (local / "traces.jsonl").exists()
    assert otlp_json_points(local / "metrics.jsonl", METRIC_OPERATION_DURATION)
    health = _printed(done.stdout, "HEALTH ")  # our own MeterProvider's reader, fed by the same operation
    assert health["p99"] == pytest.approx(_span_seconds(spans, "Project.start_feature"), rel=0.01)


STARTUP_APP = textwrap.dedent(
    """
    import logging, os, sys
    if os.environ.get("HOST_LOGGING"):
        logging.basicConfig(level=logging.INFO, format="HOST|%(name)s|%(message)s", stream=sys.stderr)
    import cde_otel.core
    print("app output")
    """
)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "stderr"),
        ({"HOST_LOGGING": "1"}, "host"),
        ({"CDE_OTEL_STARTUP_LINE": "false"}, None),
    ],
    ids=["no-host-logging", "host-logging", "turned-off"],
)
def test_one_startup_line_through_the_hosts_logging_or_on_stderr_never_on_stdout(
    env: dict[str, str], expected: str | None, tmp_path: Path, clean_env: EnvFactory
) -> None:
    done = _run(
        tmp_path, STARTUP_APP, env=clean_env(CDE_OTEL_ENABLED="true", XDG_STATE_HOME=str(tmp_path / "state"), **env)
    )
    assert done.stdout == "app output\n"
    lines = _startup_lines(done.stderr)
    if expected is None:
        assert lines == []
        return
    local = tmp_path / "state" / "cde-otel" / "cde-orchestrator"
    where = f"traces, metrics and logs -> local OTLP-JSON files in {local}"
    if expected == "stderr":
        [line] = lines
        assert line.startswith(STARTUP) and where in line
    else:
        host = [line for line in lines if line.startswith("HOST|cde_otel.telemetry|")]
        assert len(host) == 1 and where in host[0]
        assert not any(line.startswith(STARTUP) for line in lines)  # not also written on stderr directly


def test_an_instrumentation_the_application_started_itself_is_not_started_twice(
    tmp_path: Path, clean_env: EnvFactory, otlp_json_spans: SpanReader
) -> None:
    """``CDEInstrumentor().instrument()`` imports the core, whose start-up hook runs ``configure()``
    while that instrument() is still running: configure() leaves it alone."""
    manual = APP_WITH_PROVIDERS + textwrap.dedent(
        """
        from cde_otel.instrumentation import CDEInstrumentor
        CDEInstrumentor().instrument()
        """
    )
    (tmp_path / "project").mkdir()
    (tmp_path / "out").mkdir()
    env = clean_env(CDE_OTEL_ENABLED="true", XDG_STATE_HOME=str(tmp_path / "state"))
    done = _run(tmp_path, manual + WORK, tmp_path / "project", tmp_path / "out", "traces", env=env)
    line = _assert_quiet_apart_from_one_startup_line(done.stderr)
    assert "instrumented: CDE operations, MCP requests, thread context" in line
    names = [s["name"] for s in otlp_json_spans(tmp_path / "out" / "app-traces.jsonl")]
    assert names.count("Project.start_feature") == 1 and names.count("FileSystemProjectRepository.get_or_create") == 1
