"""Host records bridged off the caller's thread: the caller's context and message, nothing lost or changed."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.trace import TracerProvider

from cde_otel.logging import _deferred
from cde_otel.logging._bridge import ForeignRecordBridge, _ScrubbedMessage
from cde_otel.telemetry import correlation


class Kept(logging.Handler):
    """The host's own handler: keeps the records it handled."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def host_logger() -> Iterator[tuple[logging.Logger, Kept]]:
    logger = logging.getLogger("cde_otel.tests.deferred")
    kept = Kept()
    logger.addHandler(kept)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, kept
    logger.removeHandler(kept)
    logger.propagate = True


@pytest.fixture
def bridge(provider: LoggerProvider, host_logger: tuple[logging.Logger, Kept]) -> Iterator[ForeignRecordBridge]:
    handler = ForeignRecordBridge(provider, deferred=True)
    host_logger[0].addHandler(handler)
    yield handler
    host_logger[0].removeHandler(handler)
    handler.close()


def record_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "cde-otel-log-records"}


def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "not bridged in time"
        time.sleep(0.01)


def test_a_record_is_bridged_later_with_the_callers_context_and_message(
    bridge: ForeignRecordBridge, exporter: InMemoryLogRecordExporter, host_logger: tuple[logging.Logger, Kept]
) -> None:
    logger, kept = host_logger
    tracer = TracerProvider().get_tracer("tests")
    items = ["a"]
    with tracer.start_as_current_span("tools/call") as span, correlation("cid-7"):
        logger.info("items %s", items, extra={"feature_id": "f-1"})
    items.append("changed after the call")
    assert exporter.get_finished_logs() == ()  # not on the caller's thread

    assert bridge.drain()
    (record,) = [r.log_record for r in exporter.get_finished_logs()]
    ctx = span.get_span_context()
    assert (record.trace_id, record.span_id) == (ctx.trace_id, ctx.span_id)
    assert record.body == "items ['a']"  # rendered when it was logged
    attributes = dict(record.attributes or {})
    assert attributes["feature_id"] == "f-1"
    assert attributes["correlation_id"] == "cid-7"
    (host_record,) = kept.records
    assert (host_record.msg, host_record.args) == ("items %s", (items,))  # the host's record is untouched


def test_the_thread_bridges_by_itself_in_order(
    bridge: ForeignRecordBridge, exporter: InMemoryLogRecordExporter, host_logger: tuple[logging.Logger, Kept]
) -> None:
    before = record_threads()
    for i in range(5):
        host_logger[0].info("record %d", i)
    wait_for(lambda: len(exporter.get_finished_logs()) == 5)
    assert [r.log_record.body for r in exporter.get_finished_logs()] == [f"record {i}" for i in range(5)]
    assert len(record_threads() - before) == 1


def wake_often(monkeypatch: pytest.MonkeyPatch, *, quiet_s: float, max_delay_s: float) -> None:
    """The thread looks every 20 ms; a pause is ``quiet_s`` long; it waits ``max_delay_s`` at most."""
    for name, value in (("INTERVAL_S", 0.02), ("QUIET_S", quiet_s), ("MAX_DELAY_S", max_delay_s)):
        monkeypatch.setattr(_deferred, name, value)


@pytest.mark.usefixtures("bridge")
def test_the_thread_waits_for_the_host_to_pause(
    exporter: InMemoryLogRecordExporter, host_logger: tuple[logging.Logger, Kept], monkeypatch: pytest.MonkeyPatch
) -> None:
    wake_often(monkeypatch, quiet_s=2.0, max_delay_s=60.0)
    for i in range(25):  # a busy host: a record every 20 ms, never a pause of QUIET_S
        host_logger[0].info("busy %d", i)
        assert exporter.get_finished_logs() == ()
        time.sleep(0.02)
    wait_for(lambda: len(exporter.get_finished_logs()) == 25)  # bridged once it paused


@pytest.mark.usefixtures("bridge")
def test_a_host_that_never_pauses_waits_at_most_the_longest_delay(
    exporter: InMemoryLogRecordExporter, host_logger: tuple[logging.Logger, Kept], monkeypatch: pytest.MonkeyPatch
) -> None:
    wake_often(monkeypatch, quiet_s=3600.0, max_delay_s=0.2)
    deadline = time.monotonic() + 10.0
    while not exporter.get_finished_logs():  # logging all the while
        assert time.monotonic() < deadline, "never bridged while the host kept logging"
        host_logger[0].info("busy")
        time.sleep(0.01)


def test_a_record_with_an_exception_is_bridged_at_once(
    bridge: ForeignRecordBridge, exporter: InMemoryLogRecordExporter, host_logger: tuple[logging.Logger, Kept]
) -> None:
    try:
        raise ValueError("bad input")
    except ValueError:
        host_logger[0].exception("failed")
    (record,) = [r.log_record for r in exporter.get_finished_logs()]
    assert "ValueError: bad input" in str(dict(record.attributes or {})["exception.stacktrace"])


def test_a_full_queue_makes_the_caller_bridge_its_own_record(
    bridge: ForeignRecordBridge,
    exporter: InMemoryLogRecordExporter,
    host_logger: tuple[logging.Logger, Kept],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_deferred, "MAX_QUEUED", 2)
    monkeypatch.setattr(_deferred, "INTERVAL_S", 60.0)  # the thread would only drain at a wake-up
    bridge.drain()
    for i in range(4):
        host_logger[0].info("record %d", i)
    assert [r.log_record.body for r in exporter.get_finished_logs()] == ["record 2", "record 3"]
    assert bridge.drain()
    assert sorted(str(r.log_record.body) for r in exporter.get_finished_logs()) == [f"record {i}" for i in range(4)]


def test_close_bridges_what_waits_then_bridges_at_once(
    bridge: ForeignRecordBridge, exporter: InMemoryLogRecordExporter, host_logger: tuple[logging.Logger, Kept]
) -> None:
    before = record_threads()
    host_logger[0].info("before close")
    (worker,) = record_threads() - before
    bridge.close()
    assert [r.log_record.body for r in exporter.get_finished_logs()] == ["before close"]
    host_logger[0].info("after close")
    assert [r.log_record.body for r in exporter.get_finished_logs()] == ["before close", "after close"]
    assert not worker.is_alive()


def test_without_deferral_a_record_is_bridged_on_the_callers_thread(
    provider: LoggerProvider, exporter: InMemoryLogRecordExporter, host_logger: tuple[logging.Logger, Kept]
) -> None:
    handler = ForeignRecordBridge(provider)
    host_logger[0].addHandler(handler)
    try:
        host_logger[0].info("now")
        assert [r.log_record.body for r in exporter.get_finished_logs()] == ["now"]
    finally:
        host_logger[0].removeHandler(handler)


def test_a_filter_added_to_the_bridge_still_decides_which_records_it_sends(
    provider: LoggerProvider, exporter: InMemoryLogRecordExporter, host_logger: tuple[logging.Logger, Kept]
) -> None:
    """The bridge handles a record without the handler lock, and still through its filters."""
    handler = ForeignRecordBridge(provider)
    handler.addFilter(lambda record: "secret" not in record.getMessage())
    host_logger[0].addHandler(handler)
    try:
        host_logger[0].info("kept")
        host_logger[0].info("a secret")
        assert [r.log_record.body for r in exporter.get_finished_logs()] == ["kept"]
        assert [r.getMessage() for r in host_logger[1].records] == ["kept", "a secret"]  # the host's own: both
    finally:
        host_logger[0].removeHandler(handler)


def test_a_record_that_cannot_be_rendered_fails_on_the_callers_thread_as_before(
    bridge: ForeignRecordBridge, exporter: InMemoryLogRecordExporter, host_logger: tuple[logging.Logger, Kept]
) -> None:
    """As without deferral: the bridge's error handler sees it, the caller never does."""
    failed: list[logging.LogRecord] = []
    bridge.handleError = failed.append  # type: ignore[method-assign,assignment]
    record = host_logger[0].makeRecord(
        "cde_otel.tests.deferred", logging.INFO, __file__, 1, "%d features", ("x",), None
    )
    bridge.handle(record)
    assert [record.msg for record in failed] == ["%d features"]
    assert bridge.drain()
    assert exporter.get_finished_logs() == ()


FLUSHING_HOST = """
import json, logging, shutil, sys
from pathlib import Path
import cde_otel.logging._deferred as deferred
deferred.INTERVAL_S = 3600.0  # the thread would not bridge by itself during this test
import cde_otel.telemetry as telemetry
from opentelemetry import trace
telemetry.configure()
with trace.get_tracer("host").start_as_current_span("request") as span:
    logging.getLogger("host.app").warning("feature %s started", "f-1")
telemetry.force_flush()
files = Path(sys.argv[1])
shutil.copy(files / "logs.jsonl", files.parent / "flushed.jsonl")  # what was written before exit
print(json.dumps({"trace_id": format(span.get_span_context().trace_id, "032x")}))
"""


def test_force_flush_bridges_the_waiting_records_first(
    tmp_path: Path, clean_env: Callable[..., dict[str, str]], otlp_json_logs: Callable[[Path], list[dict[str, Any]]]
) -> None:
    files = tmp_path / "telemetry"
    (tmp_path / "host.py").write_text(FLUSHING_HOST)
    env = clean_env(CDE_OTEL_ENABLED="true", CDE_OTEL_LOCAL_DIR=str(files), CDE_OTEL_STARTUP_LINE="false")
    done = subprocess.run(
        [sys.executable, "host.py", str(files)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    printed = json.loads(done.stdout.splitlines()[-1])
    (record,) = [r for r in otlp_json_logs(tmp_path / "flushed.jsonl") if r["scope"] == "host.app"]
    assert (record["body"], record["traceId"]) == ("feature f-1 started", printed["trace_id"])


def test_a_deferred_records_message_applies_to_that_record_only(
    bridge: ForeignRecordBridge, exporter: InMemoryLogRecordExporter
) -> None:
    """The message rendered at log time is handed to the translation for its record, not any other
    (a record bridged meanwhile on a caller's thread renders its own)."""
    deferred = logging.LogRecord("host", logging.INFO, __file__, 1, "then %s", ("x",), None)
    other = logging.LogRecord("host", logging.INFO, __file__, 2, "other %s", ("y",), None)
    message_of = bridge.formatter
    assert isinstance(message_of, _ScrubbedMessage)
    message_of.rendered = (deferred, "then rendered")  # what the bridging thread sets while it translates
    try:
        assert message_of.format(deferred) == "then rendered"
        assert message_of.format(other) == "other y"
    finally:
        message_of.rendered = None
    bridge._bridge_now(deferred, "then rendered")
    assert [r.log_record.body for r in exporter.get_finished_logs()] == ["then rendered"]
    assert message_of.rendered is None  # nothing left for a later record
