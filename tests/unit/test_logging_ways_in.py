"""One way into logging per audience: an application calls ``attach_logging()``; who wires it uses the parts.

``attach_logging()`` adds cde-otel's logging next to the application's (root handlers and level
untouched) and carries a standalone instrumentor's operation lines; ``handler()`` is the stdlib
part for a hand-made set-up; ``setup_logging`` still works and says it is deprecated.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter

from cde_otel.core import Project
from cde_otel.instrumentation import CDEInstrumentor
from cde_otel.logging import __all__ as public_names
from cde_otel.logging import attach_logging, handler, reset_logging, setup_logging
from cde_otel.redaction import MASK
from cde_otel.settings import load_settings
from cde_otel.testing import capture_telemetry


def test_an_application_attaches_logging_with_one_call(tmp_path: Path, provider: LoggerProvider) -> None:
    telemetry = capture_telemetry()
    root = logging.getLogger()
    handlers_before, level_before = list(root.handlers), root.level
    CDEInstrumentor().instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider, settings=load_settings({})
    )
    log_file = tmp_path / "app.log"
    attached = attach_logging(provider, load_settings({}), log_file=log_file, level="info")
    try:
        assert (root.handlers, root.level) == (handlers_before, level_before)  # added next to, not instead of
        Project(name="app", path=str(tmp_path / "project")).activate()
        logging.getLogger("app.db").warning("connect with password=hunter2")
    finally:
        attached.detach()
        CDEInstrumentor().uninstrument()
        telemetry.shutdown()
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert "Project.activate succeeded" in [line["event"] for line in lines]
    [record] = [line for line in lines if line.get("logger") == "app.db"]
    assert record["event"] == f"connect with password={MASK}"


def test_the_stdlib_handler_sends_redacted_records_to_otel_logs(
    provider: LoggerProvider, exporter: InMemoryLogRecordExporter
) -> None:
    logger = logging.getLogger("wired.by.hand")
    logger.propagate = False
    bridge = handler(provider, load_settings({}))
    logger.addHandler(bridge)
    try:
        logger.warning("token=abc123 rejected")
    finally:
        logger.removeHandler(bridge)
        logger.propagate = True
    [record] = [r.log_record for r in exporter.get_finished_logs()]
    assert record.body == f"token={MASK} rejected"


def test_setup_logging_still_works_and_says_it_is_deprecated(tmp_path: Path) -> None:
    with pytest.warns(DeprecationWarning, match="attach_logging"):
        setup_logging("info", stream=io.StringIO(), otel=False)
    reset_logging()


def test_the_documented_ways_in_are_public() -> None:
    for name in ("attach_logging", "processors", "bridge", "handler"):
        assert name in public_names
    text = (Path(__file__).parents[2] / "docs" / "logging.md").read_text()
    for name in ("CDE_OTEL_ENABLED", "attach_logging(", "processors()", "bridge()", "handler()"):
        assert name in text, name


def test_a_second_attachment_takes_the_first_ones_place_and_each_detaches_only_its_own(tmp_path: Path) -> None:
    """The stdlib hooks are held by each attachment: one set of our handlers sees records at a time,
    detaching the replaced one changes nothing, detaching the last one restores the originals."""
    factory, call_handlers = logging.getLogRecordFactory(), logging.Logger.callHandlers
    log = logging.getLogger("app.twice")
    log.setLevel(logging.INFO)
    settings = load_settings({})
    first = attach_logging(None, settings, log_file=tmp_path / "first.log", level="info")
    log.info("one")
    second = attach_logging(None, settings, log_file=tmp_path / "second.log", level="info")
    try:
        assert first.delivery is not None and second.delivery is not None and first.delivery is not second.delivery
        assert logging.Logger.callHandlers is second.delivery.hook
        assert second.stamping is not None and logging.getLogRecordFactory() is second.stamping.factory
        log.info("two")
        first.detach()
        log.info("three")
        assert logging.Logger.callHandlers is second.delivery.hook  # the first one's detach left it alone
    finally:
        second.detach()
    log.info("four")
    assert (logging.getLogRecordFactory(), logging.Logger.callHandlers) == (factory, call_handlers)
    lines = {name: (tmp_path / f"{name}.log").read_text() for name in ("first", "second")}
    assert [word for word in ("one", "two", "three", "four") if f'"{word}"' in lines["first"]] == ["one"]
    assert [word for word in ("one", "two", "three", "four") if f'"{word}"' in lines["second"]] == ["two", "three"]
