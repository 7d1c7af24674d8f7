"""setup_logging: settings, JSON lines, console rendering, correlation, idempotence and reconfiguration."""

from __future__ import annotations

import io
import json
import logging
import logging.handlers
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider

from cde_otel.errors import CDESystemError
from cde_otel.logging import bound_context, get_logger, log_file_handlers, reset_logging, setup_logging
from cde_otel.semconv import ATTR_FEATURE_ID, ATTR_PROJECT_ID
from cde_otel.settings import load_settings
from cde_otel.telemetry import correlation

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    reset_logging()


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def our_handlers() -> list[logging.Handler]:
    # pytest adds its own capture handlers to the root logger; ours are the structlog-formatted ones.
    return [h for h in logging.getLogger().handlers if isinstance(h.formatter, structlog.stdlib.ProcessorFormatter)]


def test_logging_configuration(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "cde.log"
    settings = load_settings(
        {
            "CDE_OTEL_LOG_LEVEL": "warning",
            "CDE_OTEL_LOG_FILE": str(log_file),
            "CDE_OTEL_LOG_ROTATION": "size",
            "CDE_OTEL_LOG_MAX_BYTES": "4096",
            "CDE_OTEL_LOG_RETENTION_DAYS": "3",
        }
    )
    stream = io.StringIO()
    setup_logging(settings=settings, stream=stream)

    assert logging.getLogger().level == logging.WARNING
    (handler,) = log_file_handlers()
    assert isinstance(handler, logging.handlers.RotatingFileHandler)
    assert (handler.maxBytes, handler.backupCount) == (4096, 3)
    assert Path(handler.baseFilename) == log_file

    log = get_logger("cde_otel.tests.config")
    log.info("below the level")
    log.warning("at the level", answer=42)
    handler.flush()

    assert [entry["event"] for entry in lines(stream)] == ["at the level"]
    (from_file,) = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert from_file["event"] == "at the level"
    assert from_file["answer"] == 42


def test_explicit_arguments_win_over_settings(tmp_path: Path) -> None:
    settings = load_settings({"CDE_OTEL_LOG_LEVEL": "error", "CDE_OTEL_LOG_ROTATION": "size"})
    setup_logging("debug", tmp_path / "x.log", rotation="daily", retention_days=2, settings=settings, console=False)

    assert logging.getLogger().level == logging.DEBUG
    (handler,) = log_file_handlers()
    assert isinstance(handler, logging.handlers.TimedRotatingFileHandler)
    assert (handler.when, handler.utc, handler.backupCount) == ("MIDNIGHT", True, 2)


def test_json_output_format() -> None:
    stream = io.StringIO()
    setup_logging("debug", stream=stream, fmt="auto")  # StringIO is no terminal: JSON
    log = get_logger("cde_otel.tests.json").bind(project_id="p-1")

    log.debug("feature created", feature_id="f-9")
    try:
        raise RuntimeError("disk on fire")
    except RuntimeError:
        log.exception("save failed")
    log.info("with stack", stack_info=True)

    created, failed, stacked = lines(stream)
    assert list(created)[:4] == ["timestamp", "level", "logger", "event"]
    assert ISO_UTC.match(str(created["timestamp"]))
    assert created["level"] == "debug"
    assert created["logger"] == "cde_otel.tests.json"
    assert created["event"] == "feature created"
    assert (created["project_id"], created["feature_id"]) == ("p-1", "f-9")
    assert failed["level"] == "error"
    assert isinstance(failed["exception"], str)
    assert "RuntimeError: disk on fire" in failed["exception"]
    assert isinstance(stacked["stack"], str)
    assert "test_json_output_format" in stacked["stack"]


def test_stdlib_records_share_the_json_rendering() -> None:
    stream = io.StringIO()
    setup_logging("info", stream=stream)

    logging.getLogger("thirdparty.lib").warning("retrying %s after %d s", "GET", 2, extra={"attempt": 3})
    try:
        {}["missing"]
    except KeyError:
        logging.getLogger("thirdparty.lib").exception("lookup failed")

    warned, failed = lines(stream)
    assert warned["event"] == "retrying GET after 2 s"
    assert (warned["level"], warned["logger"], warned["attempt"]) == ("warning", "thirdparty.lib", 3)
    assert ISO_UTC.match(str(warned["timestamp"]))
    assert "KeyError: 'missing'" in str(failed["exception"])
    assert "_record" not in warned and "_from_structlog" not in warned


def test_console_renderer_on_a_terminal() -> None:
    tty = TTY()
    setup_logging("info", stream=tty)
    get_logger("cde_otel.tests.console").info("human readable", feature_id="f-1")

    output = tty.getvalue()
    assert "human readable" in output
    assert "feature_id" in output
    with pytest.raises(json.JSONDecodeError):
        json.loads(output.splitlines()[0])


def test_console_forced_without_a_terminal_has_no_colour_codes() -> None:
    stream = io.StringIO()
    setup_logging("info", stream=stream, fmt="console")
    get_logger("cde_otel.tests.console").info("plain text please")
    output = stream.getvalue()
    assert "plain text please" in output
    assert "\x1b[" not in output
    assert not output.lstrip().startswith("{")


def test_json_forced_on_a_terminal() -> None:
    tty = TTY()
    setup_logging("info", stream=tty, fmt="json")
    get_logger("cde_otel.tests.console").info("machine readable")
    assert lines(tty)[0]["event"] == "machine readable"


def test_correlation_ids_preserved() -> None:
    stream = io.StringIO()
    setup_logging("info", stream=stream)
    tracer = TracerProvider().get_tracer("tests")
    log = get_logger("cde_otel.tests.correlation")

    with tracer.start_as_current_span("Project.start_feature") as span, correlation("req-42"):
        span.set_attribute(ATTR_PROJECT_ID, "p-7")
        span.set_attribute(ATTR_FEATURE_ID, "f-3")
        log.info("inside the operation")
        logging.getLogger("thirdparty").warning("third-party inside")
    log.info("outside")

    inside, third_party, outside = lines(stream)
    ctx = span.get_span_context()
    for entry in (inside, third_party):
        assert entry["trace_id"] == format(ctx.trace_id, "032x")
        assert entry["span_id"] == format(ctx.span_id, "016x")
        assert entry["correlation_id"] == "req-42"
        assert (entry["project_id"], entry["feature_id"]) == ("p-7", "f-3")
    assert not {"trace_id", "span_id", "correlation_id"} & set(outside)


def test_ids_bound_in_contextvars_reach_every_line() -> None:
    stream = io.StringIO()
    setup_logging("info", stream=stream)
    with bound_context(project_id="p-1", feature_id="f-1"):
        get_logger("a").info("one")
        logging.getLogger("b").warning("two")
    get_logger("a").info("three")

    one, two, three = lines(stream)
    assert one["project_id"] == two["project_id"] == "p-1"
    assert one["feature_id"] == two["feature_id"] == "f-1"
    assert "project_id" not in three


def test_setup_twice_does_not_double_handlers() -> None:
    before = len(logging.getLogger().handlers)
    first, second = io.StringIO(), io.StringIO()
    setup_logging("info", stream=first)
    setup_logging("info", stream=second)

    assert len(our_handlers()) == 1
    assert len(logging.getLogger().handlers) == before + 1
    get_logger("x").info("once")
    assert first.getvalue() == ""
    assert [entry["event"] for entry in lines(second)] == ["once"]


def test_reset_restores_the_root_logger() -> None:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    setup_logging("debug", stream=io.StringIO())
    setup_logging("error", stream=io.StringIO())
    reset_logging()

    assert root.level == level
    assert root.handlers == handlers
    assert not structlog.is_configured()


def test_module_level_logger_follows_reconfiguration() -> None:
    log = get_logger("cde_otel.tests.module")  # created once, like a module global
    first, second = io.StringIO(), io.StringIO()
    setup_logging("info", stream=first)
    log.info("to first")
    setup_logging("info", stream=second, fmt="json")
    log.info("to second")
    assert [e["event"] for e in lines(first)] == ["to first"]
    assert [e["event"] for e in lines(second)] == ["to second"]


def test_unknown_level_is_a_coded_error() -> None:
    with pytest.raises(CDESystemError) as caught:
        setup_logging("loud", stream=io.StringIO())
    assert caught.value.code == "E903"
    assert caught.value.context["setting"] == "CDE_OTEL_LOG_LEVEL"


def test_unwritable_log_file_is_a_coded_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CDESystemError) as caught:
        setup_logging("info", blocker / "sub" / "x.log", console=False)
    assert caught.value.code == "E903"
    assert caught.value.context["setting"] == "CDE_OTEL_LOG_FILE"


def test_get_logger_before_setup_never_writes_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    get_logger("cde_otel.tests.unconfigured").warning("quiet library")
    assert capsys.readouterr().out == ""


def test_redaction_in_json_lines() -> None:
    stream = io.StringIO()
    setup_logging("info", stream=stream, settings=load_settings({"CDE_OTEL_REDACT_KEYS": "session"}))
    get_logger("a").info(
        "login with Authorization: Bearer abcdefghijklmnop",
        password="hunter2",
        prompt="Add auth with my key",
        prompt_length=20,
        headers={"Cookie": "c=1", "accept": "json"},
        session="s-123",
    )
    logging.getLogger("thirdparty").warning("connect password=hunter2", extra={"api_key": "k-1"})

    structlog_line, stdlib_line = lines(stream)
    raw = stream.getvalue()
    for secret in ("hunter2", "abcdefghijklmnop", "Add auth", "s-123", "c=1", "k-1"):
        assert secret not in raw
    assert structlog_line["password"] == structlog_line["prompt"] == structlog_line["session"] == "[REDACTED]"
    assert structlog_line["prompt_length"] == 20
    assert structlog_line["headers"] == {"Cookie": "[REDACTED]", "accept": "json"}
    assert stdlib_line["api_key"] == "[REDACTED]"
    assert stdlib_line["event"] == "connect password=[REDACTED]"


def test_content_capture_truncates_prompt_instead_of_masking() -> None:
    stream = io.StringIO()
    settings = load_settings({"CDE_OTEL_CAPTURE_CONTENT": "true", "CDE_OTEL_CAPTURE_MAX_LENGTH": "8"})
    setup_logging("info", stream=stream, settings=settings)
    get_logger("a").info("feature", prompt="Add authentication", api_key="k-1")
    (line,) = lines(stream)
    assert line["prompt"] == "Add auth"
    assert line["api_key"] == "[REDACTED]"
