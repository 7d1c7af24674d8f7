"""A good guest in the host's logging, in real host processes.

Telemetry is turned on the user's way (``CDE_OTEL_ENABLED=true``, the .pth start-up when the core
is imported). The hosts configure stdlib logging and structlog their own way, before and after
cde-otel starts; the tests check that nothing they configured or print changes, that their
records still reach OpenTelemetry logs inside the current trace — also after they replaced
their root handlers — and that ``shutdown()`` leaves their logging exactly as it found it.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

EnvFactory = Callable[..., dict[str, str]]
SpanReader = Callable[[Path], Iterator[dict[str, Any]]]
LogReader = Callable[[Path], list[dict[str, Any]]]


def run_host(
    tmp_path: Path, clean_env: EnvFactory, code: str, *, telemetry: bool = True, **env: str
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "host.py").write_text(textwrap.dedent(code))
    settings = {"CDE_OTEL_ENABLED": "true", "CDE_OTEL_LOCAL_DIR": str(tmp_path / "telemetry")} if telemetry else {}
    result = subprocess.run(
        [sys.executable, "host.py"],
        cwd=tmp_path,
        env=clean_env(**settings, **env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


# A host with its own logging: stdlib at DEBUG with its format, structlog with its own chain and a
# fixed clock (so two runs print the same bytes). It logs before and after importing the core.
HOST = """
import json, logging, sys
import structlog

def fixed_time(_, __, event_dict):
    event_dict["ts"] = "T"
    return event_dict

logging.basicConfig(level=logging.DEBUG, format="%(levelname)s:%(name)s:%(message)s", stream=sys.stderr)
structlog.configure(processors=[structlog.processors.add_log_level, fixed_time, structlog.processors.JSONRenderer()],
                    logger_factory=structlog.PrintLoggerFactory(sys.stderr))
root = logging.getLogger()
host_handler, host_chain = root.handlers[0], list(structlog.get_config()["processors"])
original_factory, original_call_handlers = logging.getLogRecordFactory(), logging.Logger.callHandlers

logging.getLogger("app").debug("stdlib before")
structlog.get_logger("app").info("structlog before")
from cde_otel.core import Project
project = Project(name="host", path="/nonexistent/host")
project.activate()
logging.getLogger("app").debug("stdlib after")
logging.getLogger("app").warning("stdlib warning after")
structlog.get_logger("app").info("structlog after", k=1)

chain = structlog.get_config()["processors"]
ours = [p for p in chain if getattr(p, "_cde_otel", False)]
attached = {
    "root_level": root.level,
    "root_handlers_unchanged": root.handlers == [host_handler],
    "host_chain_kept_in_order": [p for p in chain if p not in ours] == host_chain,
    "bridge_right_before_renderer": len(ours) == 1 and chain.index(ours[0]) == len(chain) - 2,
}
import cde_otel
cde_otel.shutdown()
detached = {
    "root_level": root.level,
    "root_handlers_unchanged": root.handlers == [host_handler],
    "chain_restored": structlog.get_config()["processors"] == host_chain,
    "record_factory_restored": logging.getLogRecordFactory() is original_factory,
    "call_handlers_restored": logging.Logger.callHandlers is original_call_handlers,
}
print(json.dumps({"attached": attached, "detached": detached}))
"""


def test_telemetry_changes_nothing_the_host_configured_or_prints(tmp_path: Path, clean_env: EnvFactory) -> None:
    on = run_host(tmp_path, clean_env, HOST)
    off = run_host(tmp_path, clean_env, HOST, telemetry=False)

    state = json.loads(on.stdout)
    assert state["attached"] == {
        "root_level": 10,  # DEBUG, as the host set it
        "root_handlers_unchanged": True,
        "host_chain_kept_in_order": True,
        "bridge_right_before_renderer": True,
    }
    assert all(state["detached"].values()), state["detached"]
    # What the host prints is byte for byte what it printed without telemetry, plus the one start-up
    # line, which goes through the host's own handler and format because its root logger shows INFO.
    ours = [
        line for line in on.stderr.splitlines() if line.startswith("INFO:cde_otel.telemetry:cde-otel: telemetry on")
    ]
    printed = [line for line in on.stderr.splitlines() if line not in ours]
    assert printed == off.stderr.splitlines()
    assert len(ours) == 1


def test_the_hosts_records_reach_otel_logs_once_each(
    tmp_path: Path, clean_env: EnvFactory, otlp_json_logs: LogReader
) -> None:
    run_host(tmp_path, clean_env, HOST, CDE_OTEL_LOG_LEVEL="debug")
    records = otlp_json_logs(tmp_path / "telemetry" / "logs.jsonl")
    bodies = [r["body"] for r in records if not r["scope"].startswith(("cde_otel", "opentelemetry"))]
    # After start-up: stdlib and structlog alike, each once. Before it, nothing was listening.
    assert sorted(bodies) == ["stdlib after", "stdlib warning after", "structlog after"]


def test_our_console_output_is_opt_in(tmp_path: Path, clean_env: EnvFactory) -> None:
    quiet = run_host(tmp_path, clean_env, HOST, CDE_OTEL_LOG_LEVEL="debug")
    assert "cde_otel.operations" not in quiet.stderr
    loud = run_host(tmp_path, clean_env, HOST, CDE_OTEL_LOG_CONSOLE="true", CDE_OTEL_LOG_FORMAT="json")
    ours = [json.loads(line) for line in loud.stderr.splitlines() if line.startswith('{"timestamp"')]
    events = [line["event"] for line in ours]
    assert "Project.activate succeeded" in events  # our operation lines
    assert "stdlib warning after" in events  # the host's records, as our JSON lines, next to its own
    assert "WARNING:app:stdlib warning after" in loud.stderr  # the host's own line, unchanged


def test_an_opentelemetry_handler_on_root_stays_and_nothing_is_bridged_twice(
    tmp_path: Path, clean_env: EnvFactory, otlp_json_logs: LogReader
) -> None:
    code = """
    import logging
    from opentelemetry.instrumentation.logging.handler import LoggingHandler

    handler = LoggingHandler()  # what opentelemetry-instrument puts on root; global provider, set later
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    from cde_otel.core import Project
    Project(name="h", path="/nonexistent/h").activate()
    logging.getLogger("app").info("once")
    assert handler in logging.getLogger().handlers
    logging.basicConfig(level=logging.INFO, force=True)  # the host replaces its root handlers, theirs goes
    logging.getLogger("app").info("still once")
    """
    run_host(tmp_path, clean_env, code)
    bodies = [r["body"] for r in otlp_json_logs(tmp_path / "telemetry" / "logs.jsonl") if r["scope"] == "app"]
    # Sent by their handler while it is on root, by ours once it is gone: each record exactly once.
    assert bodies == ["once", "still once"]


def test_the_bridge_off_inserts_nothing(tmp_path: Path, clean_env: EnvFactory, otlp_json_logs: LogReader) -> None:
    code = HOST.replace("cde_otel.shutdown()", "cde_otel.shutdown()\nprint('BRIDGES', len(ours))")
    result = run_host(tmp_path, clean_env, code, CDE_OTEL_LOGS_BRIDGE="false")
    assert "BRIDGES 0" in result.stdout
    logs = tmp_path / "telemetry" / "logs.jsonl"
    assert not logs.exists() or not [r for r in otlp_json_logs(logs) if r["scope"].startswith("app")]


def test_structlog_left_unconfigured_gets_the_bridge_and_gets_its_defaults_back(
    tmp_path: Path, clean_env: EnvFactory, otlp_json_logs: LogReader
) -> None:
    code = """
    import structlog
    from cde_otel.core import Project
    Project(name="h", path="/nonexistent/h").activate()
    assert structlog.is_configured()
    structlog.get_logger("app").info("default chain")  # structlog's own console renderer, on stdout
    import cde_otel
    cde_otel.shutdown()
    print("CONFIGURED AFTER", structlog.is_configured())
    """
    result = run_host(tmp_path, clean_env, code)
    assert "default chain" in result.stdout and "CONFIGURED AFTER False" in result.stdout
    bodies = [r["body"] for r in otlp_json_logs(tmp_path / "telemetry" / "logs.jsonl")]
    assert "default chain" in bodies


# A host that replaces its root handlers after cde-otel started (as the upstream
# orchestrator's configure_logging does), then logs inside an instrumented operation (a tool call).
TOOL_HOST = """
import logging, logging.config, sys
from cde_otel.core import Project, ProjectStatus  # cde-otel starts here

import tools  # the host's own code, instrumented by CDE_OTEL_TARGETS
if sys.argv[1] == "basicConfig":
    logging.basicConfig(level="INFO", stream=sys.stderr, force=True,
                        format="%(asctime)s %(name)s %(levelname)s [%(otelTraceID)s] %(message)s")
else:
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(name)s %(levelname)s [%(otelTraceID)s] %(message)s"}},
        "handlers": {"err": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "plain"}},
        "root": {"level": "INFO", "handlers": ["err"]},
    })
project = Project(name="orchestrator", path="/nonexistent/orchestrator")
project.status = ProjectStatus.ACTIVE
tools.ToolCall().handle(project)
logging.getLogger("cde_orchestrator.server").info("outside any call")
"""

TOOLS = """
import logging

logger = logging.getLogger("cde_orchestrator.server")


class ToolCall:
    def handle(self, project):
        logger.info("starting feature")
        feature = project.start_feature("from a tool call")
        logger.warning("feature %s started", feature.id)
        return feature
"""


@pytest.mark.parametrize("replaced_by", ["basicConfig", "dictConfig"])
def test_host_records_stay_in_the_trace_after_the_host_replaces_its_root_handlers(
    tmp_path: Path, clean_env: EnvFactory, otlp_json_spans: SpanReader, replaced_by: str, otlp_json_logs: LogReader
) -> None:
    (tmp_path / "tools.py").write_text(textwrap.dedent(TOOLS))
    (tmp_path / "host.py").write_text(textwrap.dedent(TOOL_HOST))
    env = clean_env(
        CDE_OTEL_ENABLED="true",
        CDE_OTEL_LOCAL_DIR=str(tmp_path / "telemetry"),
        CDE_OTEL_TARGETS="tools:ToolCall.handle",
    )
    result = subprocess.run(
        [sys.executable, "host.py", replaced_by], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    spans = list(otlp_json_spans(tmp_path / "telemetry" / "traces.jsonl"))
    (call,) = [s for s in spans if s["name"] == "ToolCall.handle"]
    (start,) = [s for s in spans if s["name"] == "Project.start_feature"]
    assert start["traceId"] == call["traceId"] and start["parentSpanId"] == call["spanId"]

    records = {r["body"]: r for r in otlp_json_logs(tmp_path / "telemetry" / "logs.jsonl")
               if r["scope"] == "cde_orchestrator.server"}  # fmt: skip
    inside = [body for body in records if body != "outside any call"]
    assert len(inside) == 2 and "starting feature" in inside
    for body in inside:  # inside the tool call's trace, on its span
        assert (records[body]["traceId"], records[body]["spanId"]) == (call["traceId"], call["spanId"]), body
        assert records[body]["attrs"]["correlation_id"] == call["attrs"]["cde.correlation_id"]
    assert records["outside any call"]["traceId"] == ""

    # What the host prints keeps its own format, now with the trace id it asked for.
    lines = [line for line in result.stderr.splitlines() if "cde_orchestrator.server" in line]
    assert len(lines) == 3, result.stderr
    pattern = r"cde_orchestrator\.server (INFO|WARNING) \[([0-9a-f]{32}|0)\] "
    assert all(re.search(pattern, line) for line in lines), lines
    assert f"[{call['traceId']}] starting feature" in result.stderr
    assert "[0] outside any call" in result.stderr
    assert "cde_otel.operations" not in result.stderr  # and nothing of ours


def test_processors_and_bridge_offered_for_the_hosts_own_chain() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    from cde_otel import correlation
    from cde_otel.logging import bridge, processors

    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]  # untyped SDK constructor
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    out = io.StringIO()
    log = structlog.wrap_logger(
        structlog.WriteLogger(out),
        processors=[
            structlog.processors.add_log_level,
            *processors(),
            bridge(provider),
            structlog.processors.JSONRenderer(),
        ],
    )
    tracer = TracerProvider().get_tracer("host")
    with correlation("req-7"), tracer.start_as_current_span("tool call") as span:
        log.info("connecting", password="hunter2")
    line = json.loads(out.getvalue())
    context = span.get_span_context()
    assert (line["correlation_id"], line["password"]) == ("req-7", "[REDACTED]")
    assert (line["trace_id"], line["span_id"]) == (format(context.trace_id, "032x"), format(context.span_id, "016x"))
    (record,) = [r.log_record for r in exporter.get_finished_logs()]
    assert record.body == "connecting" and record.trace_id == context.trace_id
    assert dict(record.attributes or {})["password"] == "[REDACTED]"
