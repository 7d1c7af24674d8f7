"""The logging layer's background thread: lazy start, wake, interval, failures, stop, fork."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from forking import in_forked_child  # type: ignore[import-not-found]  # by file name, as pytest imports it
from opentelemetry import context as otel_context
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

from cde_otel._reentry import GUARD
from cde_otel._swallowed import swallowed_counts
from cde_otel.logging._daemon import DaemonLoop


def _until(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


class _Steps:
    def __init__(self, fail_first: int = 0) -> None:
        self.seen: list[tuple[str, object, bool, bool]] = []
        self.fail_first = fail_first

    def __call__(self) -> None:
        self.seen.append(
            (
                threading.current_thread().name,
                otel_context.get_value("caller"),
                bool(otel_context.get_value(_SUPPRESS_INSTRUMENTATION_KEY)),
                GUARD.active,
            )
        )
        if len(self.seen) <= self.fail_first:
            raise RuntimeError("a step that fails")


def test_the_thread_starts_on_first_use_and_runs_the_step_when_woken() -> None:
    steps = _Steps()
    loop = DaemonLoop("cde-otel-test-wake", steps, interval_s=3600, site="test.daemon")
    assert not loop.running and not any(t.name == "cde-otel-test-wake" for t in threading.enumerate())
    token = otel_context.attach(otel_context.set_value("caller", "span of the caller"))
    try:
        loop.ensure_running()
        loop.ensure_running()  # idempotent: one thread
    finally:
        otel_context.detach(token)
    try:
        assert [t.name for t in threading.enumerate()].count("cde-otel-test-wake") == 1
        loop.wake()
        assert _until(lambda: len(steps.seen) == 1)
        # Its own thread, none of the caller's context, never recorded again.
        assert steps.seen[0] == ("cde-otel-test-wake", None, True, True)
    finally:
        loop.stop()


def test_the_step_runs_every_interval() -> None:
    steps = _Steps()
    loop = DaemonLoop("cde-otel-test-interval", steps, interval_s=0.02, site="test.daemon")
    loop.ensure_running()
    try:
        assert _until(lambda: len(steps.seen) >= 3)
    finally:
        loop.stop()


def test_a_failing_step_is_counted_and_the_thread_goes_on() -> None:
    before = swallowed_counts().get("test.daemon.failing", 0)
    steps = _Steps(fail_first=2)
    loop = DaemonLoop("cde-otel-test-failing", steps, interval_s=0.01, site="test.daemon.failing")
    loop.ensure_running()
    try:
        assert _until(lambda: len(steps.seen) >= 4)
    finally:
        loop.stop()
    assert swallowed_counts()["test.daemon.failing"] - before == 2


def test_stop_ends_the_thread_and_it_does_not_start_again() -> None:
    steps = _Steps()
    loop = DaemonLoop("cde-otel-test-stop", steps, interval_s=3600, site="test.daemon")
    loop.ensure_running()
    thread = next(t for t in threading.enumerate() if t.name == "cde-otel-test-stop")
    loop.stop()
    assert not thread.is_alive()
    assert not loop.running
    loop.ensure_running()
    assert not loop.running
    loop.stop()  # idempotent


def test_a_forked_child_has_no_thread_of_the_parents_and_starts_its_own() -> None:
    reset: list[int] = []
    steps = _Steps()
    loop = DaemonLoop(
        "cde-otel-test-fork", steps, interval_s=3600, site="test.daemon", after_fork=lambda: reset.append(os.getpid())
    )
    loop.ensure_running()

    def child() -> str:
        was_running = loop.running
        loop.ensure_running()
        loop.wake()
        stepped = _until(lambda: len(steps.seen) == 1)
        report = f"{was_running} {reset == [os.getpid()]} {stepped}"
        loop.stop()
        return report

    code, report = in_forked_child(child)
    try:
        assert code == 0
        assert report == "False True True"  # no parent's thread; the owner reset; a thread of its own
        assert loop.running and reset == []  # the parent's loop is untouched
    finally:
        loop.stop()
