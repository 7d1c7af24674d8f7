"""The OpenTelemetry logs bridge: one LogRecord per event, with trace context, severity and clean attributes."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Sequence

import pytest
import structlog
from opentelemetry._logs import SeverityNumber
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.trace import TracerProvider

from cde_otel.logging import get_logger, reset_logging, setup_logging
from cde_otel.settings import load_settings
from cde_otel.telemetry import correlation

STRUCTLOG_PLUMBING = {"_record", "_logger", "_name", "_from_structlog", "logger", "positional_args", "stack_info"}


pytestmark = pytest.mark.usefixtures("logging_reset_after")


def exported(exporter: InMemoryLogRecordExporter) -> list[ReadableLogRecord]:
    return list(exporter.get_finished_logs())


def bodies(exporter: InMemoryLogRecordExporter) -> list[object]:
    return [r.log_record.body for r in exported(exporter)]


def test_log_records_carry_the_span_trace_context(
    provider: LoggerProvider, exporter: InMemoryLogRecordExporter
) -> None:
    setup_logging("info", stream=io.StringIO(), logger_provider=provider)
    tracer = TracerProvider().get_tracer("tests")

    before = time.time_ns()
    with tracer.start_as_current_span("Project.start_feature") as span, correlation("cid-9"):
        get_logger("cde_otel.tests.otel").bind(project_id="p-1").info("feature created", feature_id="f-1")
    after = time.time_ns()

    (record,) = exported(exporter)
    log = record.log_record
    ctx = span.get_span_context()
    assert (log.trace_id, log.span_id) == (ctx.trace_id, ctx.span_id)
    assert log.body == "feature created"
    assert (log.severity_number, log.severity_text) == (SeverityNumber.INFO, "INFO")
    assert record.instrumentation_scope.name == "cde_otel.tests.otel"
    attributes = dict(log.attributes or {})
    assert attributes["project_id"] == "p-1"
    assert attributes["feature_id"] == "f-1"
    assert attributes["correlation_id"] == "cid-9"
    assert not STRUCTLOG_PLUMBING & set(attributes)
    assert log.timestamp is not None and before <= log.timestamp <= after  # when it was logged


def test_severity_and_exception_attributes(provider: LoggerProvider, exporter: InMemoryLogRecordExporter) -> None:
    setup_logging("debug", stream=io.StringIO(), logger_provider=provider)
    log = get_logger("cde_otel.tests.otel")
    log.debug("d")
    log.warning("w")
    try:
        raise ValueError("bad input")
    except ValueError:
        log.exception("e")
    log.critical("c")

    records = [r.log_record for r in exported(exporter)]
    assert [(r.body, r.severity_number, r.severity_text) for r in records] == [
        ("d", SeverityNumber.DEBUG, "DEBUG"),
        ("w", SeverityNumber.WARN, "WARN"),
        ("e", SeverityNumber.ERROR, "ERROR"),
        ("c", SeverityNumber.FATAL, "FATAL"),
    ]
    error_attributes = dict(records[2].attributes or {})
    assert error_attributes["exception.type"] == "ValueError"
    assert error_attributes["exception.message"] == "bad input"
    assert "ValueError: bad input" in str(error_attributes["exception.stacktrace"])


def test_stdlib_third_party_record_bridged_once(provider: LoggerProvider, exporter: InMemoryLogRecordExporter) -> None:
    setup_logging("info", stream=io.StringIO(), logger_provider=provider)
    tracer = TracerProvider().get_tracer("tests")

    with tracer.start_as_current_span("op") as span, correlation("cid-1"):
        logging.getLogger("urllib3.connectionpool").warning("retry %d of %d", 1, 3, extra={"host": "example"})

    (record,) = exported(exporter)
    log = record.log_record
    assert log.body == "retry 1 of 3"
    assert log.severity_number == SeverityNumber.WARN
    assert record.instrumentation_scope.name == "urllib3.connectionpool"
    assert (log.trace_id, log.span_id) == (span.get_span_context().trace_id, span.get_span_context().span_id)
    attributes = dict(log.attributes or {})
    assert attributes["host"] == "example"
    assert attributes["correlation_id"] == "cid-1"


def test_no_duplicates_when_structlog_and_stdlib_are_both_used(
    provider: LoggerProvider, exporter: InMemoryLogRecordExporter
) -> None:
    stream = io.StringIO()
    setup_logging("info", stream=stream, logger_provider=provider)
    for n in range(3):
        get_logger("app").info(f"structlog {n}")
        structlog.get_logger("other").info(f"plain structlog {n}")  # structlog's own entry point, same route
        logging.getLogger("lib").info(f"stdlib {n}")

    expected = [f"{kind} {n}" for kind in ("structlog", "plain structlog", "stdlib") for n in range(3)]
    assert sorted(map(str, bodies(exporter))) == sorted(expected)
    assert len(stream.getvalue().splitlines()) == 9


def test_records_below_the_level_are_not_bridged(provider: LoggerProvider, exporter: InMemoryLogRecordExporter) -> None:
    setup_logging("warning", stream=io.StringIO(), logger_provider=provider)
    get_logger("app").info("quiet")
    logging.getLogger("lib").info("quiet too")
    get_logger("app").error("loud")
    assert bodies(exporter) == ["loud"]


def test_redaction_in_exported_attributes(provider: LoggerProvider, exporter: InMemoryLogRecordExporter) -> None:
    setup_logging("info", stream=io.StringIO(), logger_provider=provider)
    get_logger("app").info("call", api_key="k-secret", prompt="Add auth", prompt_length=8, nested={"token": "t-1"})
    logging.getLogger("lib").warning("auth with Bearer abcdefghijkl", extra={"password": "hunter2"})

    structlog_record, stdlib_record = (r.log_record for r in exported(exporter))
    attrs = dict(structlog_record.attributes or {})
    assert attrs["api_key"] == attrs["prompt"] == "[REDACTED]"
    assert attrs["prompt_length"] == 8
    assert attrs["nested"] == {"token": "[REDACTED]"}
    assert dict(stdlib_record.attributes or {})["password"] == "[REDACTED]"
    assert stdlib_record.body == "auth with Bearer [REDACTED]"


def test_attribute_values_are_made_valid_for_otel(
    provider: LoggerProvider, exporter: InMemoryLogRecordExporter
) -> None:
    setup_logging("info", stream=io.StringIO(), logger_provider=provider)

    class Opaque:
        def __str__(self) -> str:
            return "opaque-value"

    get_logger("app").info("values", path=Opaque(), error_code=None, ids=("a", "b"))
    attrs = dict(exported(exporter)[0].log_record.attributes or {})
    assert attrs["path"] == "opaque-value"
    assert "error_code" not in attrs
    ids = attrs["ids"]
    assert isinstance(ids, Sequence) and list(ids) == ["a", "b"]


def test_reconfigure_from_no_provider_to_a_provider(
    provider: LoggerProvider, exporter: InMemoryLogRecordExporter
) -> None:
    setup_logging("info", stream=io.StringIO())  # e.g. the app's own early call
    get_logger("app").info("before the bridge")
    logging.getLogger("lib").info("before the bridge too")
    setup_logging("info", stream=io.StringIO(), logger_provider=provider)  # telemetry.configure()
    setup_logging("info", stream=io.StringIO(), logger_provider=provider)  # and once more: still one bridge
    get_logger("app").info("after")
    logging.getLogger("lib").info("after too")

    assert bodies(exporter) == ["after", "after too"]


def test_otel_false_disables_the_bridge(provider: LoggerProvider, exporter: InMemoryLogRecordExporter) -> None:
    setup_logging("info", stream=io.StringIO(), logger_provider=provider, otel=False)
    get_logger("app").info("local only")
    logging.getLogger("lib").info("local only too")
    assert exported(exporter) == []


def test_reset_stops_bridging(provider: LoggerProvider, exporter: InMemoryLogRecordExporter) -> None:
    setup_logging("info", stream=io.StringIO(), logger_provider=provider)
    reset_logging()
    logging.getLogger("lib").warning("after reset")
    assert not structlog.is_configured()
    assert exported(exporter) == []


def test_another_otel_logging_handler_on_root_is_replaced(
    provider: LoggerProvider, exporter: InMemoryLogRecordExporter
) -> None:
    # What `opentelemetry-instrument` (LoggingInstrumentor) installs: it would forward every record a second time.
    root = logging.getLogger()
    foreign = LoggingHandler(logger_provider=provider)
    root.addHandler(foreign)
    try:
        setup_logging("info", stream=io.StringIO(), logger_provider=provider)
        assert foreign not in root.handlers
        get_logger("app").info("structlog once")
        logging.getLogger("lib").info("stdlib once")
    finally:
        root.removeHandler(foreign)
    assert sorted(map(str, bodies(exporter))) == ["stdlib once", "structlog once"]


def test_opentelemetry_own_records_are_not_bridged(
    provider: LoggerProvider, exporter: InMemoryLogRecordExporter
) -> None:
    stream = io.StringIO()
    setup_logging("info", stream=stream, logger_provider=provider)
    logging.getLogger("opentelemetry.exporter.otlp").warning("Failed to export logs")
    assert exported(exporter) == []
    assert "Failed to export logs" in stream.getvalue()  # still written locally


def test_content_capture_truncates_exported_prompt(
    provider: LoggerProvider, exporter: InMemoryLogRecordExporter
) -> None:
    settings = load_settings({"CDE_OTEL_CAPTURE_CONTENT": "true", "CDE_OTEL_CAPTURE_MAX_LENGTH": "3"})
    setup_logging("info", stream=io.StringIO(), logger_provider=provider, settings=settings)
    get_logger("app").info("f", prompt="Add auth")
    logging.getLogger("lib").info("g", extra={"prompt": "Add auth"})
    assert [dict(r.log_record.attributes or {})["prompt"] for r in exported(exporter)] == ["Add", "Add"]


def test_global_provider_used_when_configured(
    monkeypatch: pytest.MonkeyPatch, provider: LoggerProvider, exporter: InMemoryLogRecordExporter
) -> None:
    # Setting the real global provider is once-per-process; stand in for `set_logger_provider` here.
    import opentelemetry._logs

    monkeypatch.setattr(opentelemetry._logs, "get_logger_provider", lambda: provider)
    setup_logging("info", stream=io.StringIO())
    get_logger("app").info("to the global provider")
    assert bodies(exporter) == ["to the global provider"]


def test_no_bridge_without_a_configured_provider(provider: LoggerProvider) -> None:
    from cde_otel.logging._config import _resolve_logger_provider

    assert _resolve_logger_provider(None, None) is None  # the global one is still the API's proxy
    assert _resolve_logger_provider(None, True) is not None  # forced: the proxy forwards once one is set
    assert _resolve_logger_provider(provider, None) is provider
    assert _resolve_logger_provider(provider, False) is None


SECRET = "password=hunter2 api_key=sk-live-abcdefghijklmnop1234"


def test_exceptions_are_scrubbed_in_bridged_records(
    provider: LoggerProvider, exporter: InMemoryLogRecordExporter
) -> None:
    setup_logging("info", stream=io.StringIO(), logger_provider=provider)
    for log in (get_logger("app"), logging.getLogger("lib")):
        try:
            raise RuntimeError(f"login failed: {SECRET}")
        except RuntimeError:
            log.exception(f"caught {SECRET}")

    records = [r.log_record for r in exported(exporter)]
    assert len(records) == 2
    for record in records:
        attributes = dict(record.attributes or {})
        text = f"{record.body!s} {attributes}"
        assert "hunter2" not in text and "sk-live" not in text, text
        assert attributes["exception.message"] == "login failed: password=[REDACTED] api_key=[REDACTED]"
        assert "RuntimeError: login failed: password=[REDACTED]" in str(attributes["exception.stacktrace"])


def test_the_structlog_bridge_never_changes_the_event(provider: LoggerProvider) -> None:
    from cde_otel.logging._bridge import StructlogBridge

    bridge = StructlogBridge(provider)
    event = {"event": f"login {SECRET}", "api_key": "k-1", "nested": {"token": "t"}, "level": "info"}
    before = repr(event)
    assert bridge(None, "info", event) is event
    assert repr(event) == before  # what the host renders next is what it logged


def test_setup_logging_after_attach_bridges_each_record_once(
    provider: LoggerProvider, exporter: InMemoryLogRecordExporter
) -> None:
    from cde_otel.logging import attach_logging

    attached = attach_logging(provider, load_settings({}))
    try:
        setup_logging("info", stream=io.StringIO(), logger_provider=provider)  # the app's own call, later
        logging.getLogger("lib").warning("once")
        get_logger("app").info("structlog once")
    finally:
        reset_logging()
        attached.detach()
    assert sorted(map(str, bodies(exporter))) == ["once", "structlog once"]
