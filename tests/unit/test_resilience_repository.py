"""ResilientProjectRepository, phase-by-phase progress, and the seed's recovery strategies."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cde_otel.core import FileSystemProjectRepository
from cde_otel.errors import CircuitBreakerOpenError, ReadOnlyModeError, StateError
from cde_otel.resilience import (
    PERSISTENCE_BREAKER,
    CircuitBreaker,
    ResilientProjectRepository,
    advance_and_save,
    breakers,
    complete_and_save,
)
from cde_otel.settings import load_settings
from cde_otel.testing import ManualClock, simulate_storage_error


def resilient(clock: ManualClock, waits: list[float], **overrides: object) -> ResilientProjectRepository:
    defaults: dict[str, object] = {"retry_attempts": 3, "retry_max_wait_s": 0.5, "breaker_failures": 2,
                                   "breaker_timeout_s": 30.0}  # fmt: skip
    config = load_settings({}, **{**defaults, **overrides})
    return ResilientProjectRepository(config, sleep=waits.append, clock=clock)


def test_configured_from_settings() -> None:
    config = load_settings({"CDE_OTEL_RETRY_ATTEMPTS": "7", "CDE_OTEL_BREAKER_FAILURES": "4",
                            "CDE_OTEL_BREAKER_TIMEOUT_S": "12", "CDE_OTEL_READONLY_PROBE_S": "3",
                            "CDE_OTEL_BACKUP_RETENTION": "4"})  # fmt: skip
    repo = ResilientProjectRepository(config)
    assert repo.retry.attempts == 7
    assert repo.breaker.failure_threshold == 4
    assert repo.breaker.timeout == 12
    assert repo.readonly_probe_s == 3
    assert repo.backup_retention == 4
    assert breakers()[PERSISTENCE_BREAKER] == "closed"


def test_transient_write_failures_are_retried(tmp_path: Path) -> None:
    waits: list[float] = []
    repo = resilient(ManualClock(), waits, breaker_failures=3)  # each failed attempt counts toward the breaker
    project = repo.get_or_create(tmp_path)
    project.activate()
    with simulate_storage_error(errno.EAGAIN, times=2) as fault:
        repo.save(project)
    assert fault.failures == 2
    assert len(waits) == 2
    assert project.revision == 2
    assert repo.breaker.state == "closed"
    loaded = FileSystemProjectRepository().get_by_path(tmp_path)
    assert loaded is not None
    assert loaded.status.value == "active"


def test_persistent_io_failure_opens_the_breaker_and_rolls_back(tmp_path: Path) -> None:
    clock = ManualClock()
    repo = resilient(clock, [])
    project = repo.get_or_create(tmp_path)
    project.activate()
    repo.save(project)
    for _ in range(2):
        project.start_feature("lost")
        with simulate_storage_error(errno.EIO), pytest.raises(StateError) as caught:
            repo.save(project)
        assert caught.value.code == "E201"
        assert project.features == {}
    assert repo.breaker.state == "open"
    project.start_feature("blocked")
    with pytest.raises(CircuitBreakerOpenError) as opened:
        repo.save(project)  # short-circuited: the disk is not even touched
    assert opened.value.code == "E901"
    assert project.features == {}
    clock.now += 30
    feature = project.start_feature("after cooldown")
    repo.save(project)
    assert repo.breaker.state == "closed"
    loaded = FileSystemProjectRepository().get_by_path(tmp_path)
    assert loaded is not None
    assert list(loaded.features) == [feature.id]


def test_full_disk_goes_read_only_through_the_resilient_stack(tmp_path: Path) -> None:
    clock = ManualClock()
    repo = resilient(clock, [])
    project = repo.get_or_create(tmp_path)
    with simulate_storage_error(errno.ENOSPC), pytest.raises(ReadOnlyModeError):
        repo.save(project)
    assert project.read_only
    assert repo.breaker.failure_count == 1  # a full disk is a broken dependency
    clock.now += repo.readonly_probe_s
    repo.save(project)
    assert not project.read_only


def test_partial_feature_completion(tmp_path: Path) -> None:
    repo = FileSystemProjectRepository()
    project = repo.get_or_create(tmp_path)
    project.activate()
    feature = project.start_feature("Add OAuth login")
    repo.save(project)
    advance_and_save(repo, project, feature.id, "decompose", {"spec": "done"})
    advance_and_save(repo, project, feature.id, "design", {"tasks": [1, 2]})
    # the next phase submission fails to save: it is rolled back, in memory and on disk
    with simulate_storage_error(errno.EIO), pytest.raises(StateError):
        advance_and_save(repo, project, feature.id, "implement", {"design": "x"})
    assert feature.current_phase == "design"
    assert "design" not in feature.artifacts
    # a crash and restart: a new process loads the last successfully saved phase and resumes
    script = textwrap.dedent(
        f"""
        from cde_otel.core import FileSystemProjectRepository
        from cde_otel.resilience import advance_and_save
        repo = FileSystemProjectRepository()
        project = repo.get_by_path({str(tmp_path)!r})
        feature = project.get_feature({feature.id!r})
        assert feature.current_phase == "design", feature.current_phase
        advance_and_save(repo, project, feature.id, "implement", {{"design": "resumed"}})
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDE_OTEL_")}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=60)
    resumed = FileSystemProjectRepository().get_by_path(tmp_path)
    assert resumed is not None
    again = resumed.get_feature(feature.id)
    assert again.current_phase == "implement"
    assert again.artifacts == {"define": {"spec": "done"}, "decompose": {"tasks": [1, 2]},
                               "design": {"design": "resumed"}}  # fmt: skip
    for phase in ("test", "review"):
        advance_and_save(repo := FileSystemProjectRepository(), resumed, feature.id, phase, {phase: True})
    complete_and_save(repo, resumed, feature.id, {"approved": True})
    final = FileSystemProjectRepository().get_by_path(tmp_path)
    assert final is not None
    assert final.get_feature(feature.id).status.value == "completed"


def test_conflicting_phase_submission_is_rolled_back(tmp_path: Path) -> None:
    repo = FileSystemProjectRepository()
    project = repo.get_or_create(tmp_path)
    project.activate()
    feature = project.start_feature("x")
    repo.save(project)
    other = FileSystemProjectRepository().get_by_path(tmp_path)
    assert other is not None
    other.name = "renamed elsewhere"
    FileSystemProjectRepository().save(other)
    with pytest.raises(StateError) as caught:
        advance_and_save(repo, project, feature.id, "decompose", {"a": 1})
    assert caught.value.code == "E202"
    assert feature.current_phase == "define"


def test_recovery_strategies(tmp_path: Path) -> None:
    """PROD-01.3: retry transient failures, roll back on errors, read-only on critical failures."""
    clock = ManualClock()
    waits: list[float] = []
    state_manager = resilient(clock, waits)
    project = state_manager.get_or_create(tmp_path)
    stale = FileSystemProjectRepository().get_or_create(tmp_path)
    project.activate()
    state_manager.save(project)
    # 1. a recoverable conflict: the caller retries deliberately with force=True
    stale.name = "forced"
    with pytest.raises(StateError) as conflict:
        state_manager.save(stale)
    assert (conflict.value.code, conflict.value.recoverable) == ("E202", True)
    assert FileSystemProjectRepository().get_or_create(tmp_path).name != "forced"  # the conflict wrote nothing
    state_manager.save(stale, force=True)
    assert FileSystemProjectRepository().get_or_create(tmp_path).name == "forced"
    # 2. a transient failure is retried automatically
    project = state_manager.get_or_create(tmp_path)
    project.activate()  # the forced save deliberately overwrote the activation
    project.start_feature("retried")
    with simulate_storage_error(errno.EBUSY, times=1):
        state_manager.save(project)
    assert len(waits) == 1
    # 3. an error rolls the state back
    project.archive()
    with simulate_storage_error(errno.EIO), pytest.raises(StateError) as failed:
        state_manager.save(project)
    assert failed.value.recoverable is True
    assert project.status.value == "active"
    # 4. a critical failure switches to safe (read-only) mode
    with simulate_storage_error(errno.EROFS), pytest.raises(ReadOnlyModeError) as critical:
        state_manager.save(project)
    assert critical.value.code == "E207"
    assert project.read_only and project.get_active_features()


def test_shared_breaker_can_be_injected(tmp_path: Path) -> None:
    breaker = CircuitBreaker(1, 10, name="injected", register=False)
    repo = ResilientProjectRepository(load_settings({}), breaker=breaker, sleep=lambda _s: None)
    project = repo.get_or_create(tmp_path)
    with simulate_storage_error(errno.EIO), pytest.raises(StateError):
        repo.save(project)
    assert breaker.state == "open"
    assert "injected" not in breakers()
