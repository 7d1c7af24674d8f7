"""The circuit breaker: one attempt per breaker call with retries outside it, no
lock held across the guarded call, and every live breaker visible to health.
"""

from __future__ import annotations

import errno
import threading
from pathlib import Path

import pytest

from cde_otel.errors import StateError
from cde_otel.resilience import PERSISTENCE_BREAKER, CircuitBreaker, ResilientProjectRepository, breakers
from cde_otel.settings import load_settings
from cde_otel.testing import ManualClock, simulate_storage_error

DEADLINE_S = 10.0


def test_the_breaker_does_not_serialise_calls(tmp_path: Path) -> None:
    breaker = CircuitBreaker(3, 10, name="no-serialisation", register=False)
    entered, release = threading.Event(), threading.Event()
    results: list[str] = []

    def slow() -> str:
        entered.set()
        release.wait(DEADLINE_S)
        return "slow"

    slow_call = threading.Thread(target=lambda: results.append(breaker.call(slow)))
    slow_call.start()
    try:
        assert entered.wait(DEADLINE_S)
        fast_call = threading.Thread(target=lambda: results.append(breaker.call(lambda: "fast")))
        fast_call.start()
        fast_call.join(DEADLINE_S)
        assert results == ["fast"], "a second call waited for the first one to finish"
    finally:
        release.set()
        slow_call.join(DEADLINE_S)
    assert results == ["fast", "slow"]


def test_a_retrying_save_does_not_hold_up_saves_of_other_projects(tmp_path: Path) -> None:
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    backing_off, release = threading.Event(), threading.Event()

    def backoff(_seconds: float) -> None:
        backing_off.set()
        release.wait(DEADLINE_S)

    repo = ResilientProjectRepository(load_settings({}, retry_attempts=3, breaker_failures=5), sleep=backoff)
    first, second = repo.get_or_create(first_dir), repo.get_or_create(second_dir)
    first.activate()
    second.activate()
    errors: list[BaseException] = []

    def save_first() -> None:
        try:
            with simulate_storage_error(errno.EAGAIN, times=1):
                repo.save(first)
        except BaseException as exc:
            errors.append(exc)

    retrying = threading.Thread(target=save_first)
    retrying.start()
    try:
        assert backing_off.wait(DEADLINE_S), "the first save never retried"
        other = threading.Thread(target=lambda: repo.save(second))
        other.start()
        other.join(DEADLINE_S)
        assert not other.is_alive(), "the second project's save waited for the first one's retry backoff"
        assert retrying.is_alive(), "the first save was still backing off"
    finally:
        release.set()
        retrying.join(DEADLINE_S)
    assert errors == []
    assert first.revision == 2 and second.revision == 2


def test_each_retry_attempt_is_one_breaker_call(tmp_path: Path) -> None:
    repo = ResilientProjectRepository(load_settings({}, retry_attempts=3, breaker_failures=10), sleep=lambda _s: None)
    project = repo.get_or_create(tmp_path)
    project.activate()

    with simulate_storage_error(errno.EAGAIN, times=2):
        repo.save(project)

    assert repo.breaker.failure_count == 0  # two failed attempts counted, the third one's success reset them
    with simulate_storage_error(errno.EAGAIN), pytest.raises(StateError):
        repo.save(project)
    assert repo.breaker.failure_count == 3


def test_health_sees_every_live_breaker_of_a_name(tmp_path: Path) -> None:
    config = load_settings({}, breaker_failures=1, retry_attempts=1)
    failing = ResilientProjectRepository(config, sleep=lambda _s: None, clock=ManualClock())
    healthy = ResilientProjectRepository(config, sleep=lambda _s: None, clock=ManualClock())  # registered last
    project = failing.get_or_create(tmp_path)
    project.activate()

    with simulate_storage_error(errno.EIO), pytest.raises(StateError):
        failing.save(project)

    assert failing.breaker.state == "open" and healthy.breaker.state == "closed"
    assert breakers()[PERSISTENCE_BREAKER] == "open"
