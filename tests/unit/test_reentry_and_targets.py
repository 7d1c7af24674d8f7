"""No re-entry, and bad targets skipped in real host processes.

* An instrumented method that cde-otel's own recording calls — ``json.JSONEncoder.encode``, which
  structlog's JSON renderer (our log file and console lines) uses — records the host's calls,
  exactly, and never ours: no loop, no hang, no span for our own rendering.
* A ``CDE_OTEL_TARGETS`` entry that is malformed, names a missing module, class or method, or is
  not a method of a class is reported once on stderr and skipped; the rest is instrumented.
* A ``configure()`` that fails half-way leaves nothing: no providers set, no hooks, no threads.
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

from cde_otel._reentry import GUARD
from cde_otel.instrumentation import CDEInstrumentor
from cde_otel.testing import capture_telemetry

EnvFactory = Callable[..., dict[str, str]]
SpanReader = Callable[[Path], Iterator[dict[str, Any]]]


def _run(tmp_path: Path, env: dict[str, str], code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    (tmp_path / "host.py").write_text(textwrap.dedent(code))
    return subprocess.run(
        [sys.executable, "host.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


JSON_HOST = """
import json, logging
logging.getLogger().setLevel(logging.INFO)
logging.getLogger().addHandler(logging.NullHandler())
from cde_otel.core import Project
project = Project(name="json", path="/nonexistent/json")
project.activate()  # an operation line, rendered by us
for n in range(3):
    json.dumps({"n": n})  # the host's own calls: recorded
    logging.getLogger("app").warning("logged %d", n)  # rendered as a JSON line by us: not recorded
print("done")
"""


def test_a_target_our_rendering_uses_records_the_hosts_calls_only(
    tmp_path: Path, clean_env: EnvFactory, otlp_json_spans: SpanReader
) -> None:
    local = tmp_path / "telemetry"
    env = clean_env(
        CDE_OTEL_ENABLED="true",
        CDE_OTEL_LOCAL_DIR=str(local),
        CDE_OTEL_TARGETS="json:JSONEncoder.encode",
        CDE_OTEL_LOG_FILE=str(tmp_path / "cde.log"),
        CDE_OTEL_LOG_CONSOLE="true",
        CDE_OTEL_LOG_FORMAT="json",  # structlog's JSONRenderer: json.dumps -> JSONEncoder.encode
        CDE_OTEL_STARTUP_LINE="false",  # stderr is then exactly our console lines
    )
    result = _run(tmp_path, env, JSON_HOST)  # before the guard: 315k lines in 120 s, never done
    assert result.returncode == 0 and result.stdout.strip() == "done", result.stderr[-2000:]
    names = [s["name"] for s in otlp_json_spans(local / "traces.jsonl")]
    assert names.count("JSONEncoder.encode") == 3
    ours = [json.loads(line) for line in (tmp_path / "cde.log").read_text().splitlines()]
    assert [line["event"] for line in ours if line["event"].startswith("logged")] == [
        "logged 0",
        "logged 1",
        "logged 2",
    ]
    assert sum(line.get("operation") == "JSONEncoder.encode" for line in ours) == 3  # one line per host call
    assert len(result.stderr.splitlines()) == len(ours)  # the console: our lines, nothing more


class Recorded:
    def work(self) -> str:
        return "done"


def test_the_wrapper_runs_bare_while_cde_otel_records() -> None:
    telemetry = capture_telemetry()
    CDEInstrumentor().instrument(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        targets=[f"{__name__}:Recorded.work"],
        log_operations=False,
    )
    try:
        GUARD.active = True
        try:
            assert Recorded().work() == "done"
        finally:
            GUARD.active = False
        assert telemetry.spans() == []
        assert Recorded().work() == "done"
        assert [s.name for s in telemetry.spans()] == ["Recorded.work"]
    finally:
        CDEInstrumentor().uninstrument()


GOOD = """
class Good:
    def run(self):
        return 42
"""

BAD_TARGETS = {  # in the order they are reported
    "os:path": "must look like 'package.module:Class.method'",
    "json:Nope.run": "'json' has no 'Nope'",
    "os:sep.join": "os.sep is not a class",
    "json:JSONEncoder.nope": "class JSONEncoder has no method 'nope'",
    "json:JSONEncoder.item_separator": "JSONEncoder.item_separator is not a method",
    "builtins:dict.get": "it cannot be patched",
    "nosuch.module:Thing.run": "module 'nosuch.module' was never imported",  # at exit: it might have been
}


def test_bad_targets_are_reported_once_and_skipped(
    tmp_path: Path, clean_env: EnvFactory, otlp_json_spans: SpanReader
) -> None:
    (tmp_path / "good.py").write_text(textwrap.dedent(GOOD))  # importable from the script's directory only
    local = tmp_path / "telemetry"
    code = """
    import sys
    from cde_otel.core import Project
    from good import Good
    assert Good().run() == 42
    Project(name="t", path="/nonexistent/t").activate()
    import cde_otel
    from cde_otel.instrumentation import CDEInstrumentor
    cde_otel.shutdown()
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    # Again, by hand: the same bad entries are not reported twice.
    CDEInstrumentor().instrument(tracer_provider=TracerProvider(), meter_provider=MeterProvider())
    CDEInstrumentor().uninstrument()
    print("done")
    """
    env = clean_env(
        CDE_OTEL_ENABLED="true",
        CDE_OTEL_LOCAL_DIR=str(local),
        CDE_OTEL_TARGETS=",".join([*BAD_TARGETS, "good:Good.run"]),
        CDE_OTEL_STARTUP_LINE="false",  # stderr is then exactly the reports
    )
    result = _run(tmp_path, env, code)
    assert result.returncode == 0 and result.stdout.strip() == "done", result.stderr[-2000:]
    lines = result.stderr.splitlines()
    assert len(lines) == len(BAD_TARGETS), result.stderr
    for (spec, reason), line in zip(BAD_TARGETS.items(), lines, strict=True):
        assert line.startswith(f"cde-otel: instrumentation target {spec!r} skipped: "), line
        assert reason in line, line
    names = [s["name"] for s in otlp_json_spans(local / "traces.jsonl")]
    assert names.count("Good.run") == 1 and "Project.activate" in names


def test_a_target_module_that_fails_to_import_is_reported_and_skipped(
    tmp_path: Path, clean_env: EnvFactory, otlp_json_spans: SpanReader
) -> None:
    (tmp_path / "good.py").write_text(textwrap.dedent(GOOD))
    (tmp_path / "broken.py").write_text("raise ZeroDivisionError('at import')\n")
    local = tmp_path / "telemetry"
    code = """
    from cde_otel.core import Project  # telemetry starts here, the script's directory on sys.path
    from good import Good
    assert Good().run() == 42
    print("done")
    """
    env = clean_env(
        CDE_OTEL_ENABLED="true",
        CDE_OTEL_LOCAL_DIR=str(local),
        CDE_OTEL_TARGETS="broken:Thing.run,good:Good.run",
        CDE_OTEL_STARTUP_LINE="false",  # stderr is then exactly the report
    )
    result = _run(tmp_path, env, code)
    assert result.returncode == 0 and result.stdout.strip() == "done", result.stderr[-2000:]
    assert result.stderr.splitlines() == [
        "cde-otel: instrumentation target 'broken:Thing.run' skipped: "
        "importing 'broken' failed: ZeroDivisionError: at import"
    ]
    assert [s["name"] for s in otlp_json_spans(local / "traces.jsonl")] == ["Good.run"]


NOTHING_LEFT = """
import json, logging, sys, threading
import structlog
from opentelemetry import trace
host_handler = logging.StreamHandler(sys.stdout)
logging.getLogger().addHandler(host_handler)
factory, call_handlers = logging.getLogRecordFactory(), logging.Logger.callHandlers
from cde_otel.core import Project  # the start-up tries, and fails
import cde_otel.telemetry
print(json.dumps({
    "configured": cde_otel.telemetry.is_configured(),
    "tracer_provider": type(trace.get_tracer_provider()).__name__,
    "threads": sorted(t.name for t in threading.enumerate()),
    "root_handlers_unchanged": logging.getLogger().handlers == [host_handler],
    "hooks_unchanged": logging.getLogRecordFactory() is factory and logging.Logger.callHandlers is call_handlers,
    "structlog_configured": structlog.is_configured(),
    "patched": hasattr(Project.activate, "__wrapped__"),
    "threading_patched": hasattr(threading.Thread.start, "__wrapped__"),
}))
"""


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("CDE_OTEL_LOG_FILE", "{tmp}/a-file/cde.log"),  # refused after the providers exist
        ("OTEL_TRACES_EXPORTER", "zipkin"),  # refused before
        ("OTEL_METRIC_EXPORT_INTERVAL", "soon"),
    ],
)
def test_a_failed_start_leaves_nothing_behind(tmp_path: Path, clean_env: EnvFactory, setting: str, value: str) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    env = clean_env(
        CDE_OTEL_ENABLED="true", CDE_OTEL_LOCAL_DIR=str(tmp_path / "telemetry"), **{setting: value.format(tmp=tmp_path)}
    )
    result = _run(tmp_path, env, NOTHING_LEFT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "cde-otel: telemetry was not enabled:" in result.stderr and "E903" in result.stderr
    state = json.loads(result.stdout.splitlines()[-1])
    assert state == {
        "configured": False,
        "tracer_provider": "ProxyTracerProvider",
        "threads": ["MainThread"],
        "root_handlers_unchanged": True,
        "hooks_unchanged": True,
        "structlog_configured": False,
        "patched": False,
        "threading_patched": False,
    }
