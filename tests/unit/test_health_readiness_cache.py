"""Readiness is cheap: the state is read again only when ``stat`` shows its files changed, and
``readiness_now()`` answers from the caches without computing anything — yet a state that
becomes unreadable (or readable again) is seen by the very next check, and no check writes.

Behaviour only: what readiness answers, and how often the state file is read. No timings.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cde_otel.core import FileSystemProjectRepository
from cde_otel.health import HealthMonitor
from cde_otel.testing import FakeHost, ManualClock

ProjectFactory = Callable[..., Path]
MonitorFactory = Callable[..., HealthMonitor]


@pytest.fixture
def state_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every state read the health monitor makes (it reads through a non-recovering repository)."""
    reads: list[str] = []
    original = FileSystemProjectRepository.get_by_path

    def counted(self: FileSystemProjectRepository, path: str | os.PathLike[str]) -> object:
        if not self.recover_from_backups:
            reads.append(str(path))
        return original(self, path)

    monkeypatch.setattr(FileSystemProjectRepository, "get_by_path", counted)
    return reads


@pytest.fixture
def project(make_project: ProjectFactory) -> Path:
    return make_project(features=2)


@pytest.fixture
def monitor(project: Path, make_monitor: MonitorFactory) -> Iterator[HealthMonitor]:
    yield make_monitor(project)


def state_file(project: Path) -> Path:
    return project / ".cde" / "state.json"


def snapshot(directory: Path) -> dict[str, bytes | None]:
    return {
        str(path.relative_to(directory)): path.read_bytes() if path.is_file() else None
        for path in sorted(directory.rglob("*"))
        if not path.name.endswith(".lock")
    }


def test_an_unchanged_state_is_read_once(monitor: HealthMonitor, state_reads: list[str]) -> None:
    for _ in range(50):
        assert monitor.readiness() == (True, [])

    assert len(state_reads) == 1


def test_readiness_now_answers_from_the_caches_once_they_are_filled(
    monitor: HealthMonitor, state_reads: list[str]
) -> None:
    assert monitor.readiness_now() is None  # nothing cached yet: the caller must not compute on its loop
    assert monitor.readiness() == (True, [])

    for _ in range(50):
        assert monitor.readiness_now() == (True, [])
    assert len(state_reads) == 1


def test_a_state_that_becomes_unreadable_fails_the_next_check_and_recovers_with_it(
    project: Path, monitor: HealthMonitor, state_reads: list[str]
) -> None:
    shutil.rmtree(project / ".cde" / "backups")
    good = state_file(project).read_bytes()
    assert monitor.readiness() == (True, [])

    state_file(project).write_text("{ not json")
    assert monitor.readiness_now() is None  # changed on disk: not answered from the cache
    ready, reasons = monitor.readiness()
    assert not ready
    assert any("project state unreadable" in r and "E203" in r for r in reasons), reasons
    assert monitor.readiness_now() == (ready, reasons)  # the new verdict is cached in turn

    state_file(project).write_bytes(good)
    assert monitor.readiness() == (True, [])
    assert len(state_reads) == 3  # once per version of the file, the clock never moved


def test_a_state_file_replaced_by_a_directory_fails_the_next_check(project: Path, monitor: HealthMonitor) -> None:
    assert monitor.readiness() == (True, [])

    state_file(project).unlink()
    state_file(project).mkdir()

    ready, reasons = monitor.readiness()
    assert not ready and any("project state unreadable" in r for r in reasons), reasons


def test_a_same_size_rewrite_with_the_old_mtime_is_still_seen(project: Path, monitor: HealthMonitor) -> None:
    shutil.rmtree(project / ".cde" / "backups")
    path = state_file(project)
    assert monitor.readiness() == (True, [])
    before = path.stat()

    with path.open("r+b") as handle:  # in place: same inode, same size
        handle.write(b"#")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the old modification time

    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns
    assert monitor.readiness()[0] is False  # the change time moved: read again


def test_removing_the_last_valid_backup_of_a_damaged_state_fails_the_next_check(
    project: Path, monitor: HealthMonitor
) -> None:
    state_file(project).write_text("{ not json")
    ready, reasons = monitor.readiness()
    assert ready, reasons  # the application's next load restores it from a backup
    assert monitor.get_status()["status"] == "degraded"

    shutil.rmtree(project / ".cde" / "backups")

    ready, reasons = monitor.readiness()
    assert not ready and any("E203" in r for r in reasons), reasons


def test_an_unchanged_state_is_read_again_after_the_maximum_age(
    monitor: HealthMonitor, clock: ManualClock, state_reads: list[str]
) -> None:
    monitor.readiness()
    clock.advance(5)
    monitor.readiness()
    assert len(state_reads) == 1

    clock.advance(30)
    assert monitor.readiness_now() is None
    monitor.readiness()
    assert len(state_reads) == 2


def test_readiness_checks_never_write_to_the_project(project: Path, monitor: HealthMonitor) -> None:
    shutil.rmtree(project / ".cde" / "backups")
    good = state_file(project).read_bytes()
    monitor.readiness()

    for content in (b"{ not json", good, b"", good):
        state_file(project).write_bytes(content)
        before = snapshot(project)
        for _ in range(3):
            monitor.readiness()
            monitor.readiness_now()
        monitor.get_status()
        assert snapshot(project) == before


def test_disk_readings_long_past_their_time_to_live_are_not_answered_from_the_cache(
    monitor: HealthMonitor, host: FakeHost, clock: ManualClock
) -> None:
    assert monitor.readiness() == (True, [])
    host.free_mb = 1

    assert monitor.readiness_now() == (True, [])  # within the time-to-live the cached reading stands
    clock.advance(2)  # 1 s past a 1 s time-to-live: beyond the grace of half of it
    assert monitor.readiness_now() is None  # whoever answers must wait for a fresh reading
    ready, reasons = monitor.readiness()
    assert not ready and "disk space critical" in reasons[0]


def test_read_only_is_live_even_from_the_caches(monitor: HealthMonitor, host: FakeHost) -> None:
    monitor.readiness()
    host.read_only = "storage refused the write"

    assert monitor.readiness_now() == (False, ["read-only: storage refused the write"])


def test_a_subclass_that_overrides_readiness_is_never_answered_from_the_caches(project: Path) -> None:
    class Always(HealthMonitor):
        def readiness(self) -> tuple[bool, list[str]]:
            return False, ["decided by the subclass"]

    monitor = Always(project)
    monitor.readiness()

    assert monitor.readiness_now() is None


def test_a_steady_poller_gets_fresh_disk_readings_without_waiting_for_them(
    monitor: HealthMonitor, host: FakeHost, clock: ManualClock
) -> None:
    assert monitor.readiness() == (True, [])
    host.free_mb = 1
    clock.advance(0.8)  # late in the reading's time-to-live: answered, and refreshed in the background

    assert monitor.readiness_now() == (True, [])
    deadline = time.monotonic() + 10
    while monitor.readiness_now() == (True, []) and time.monotonic() < deadline:
        time.sleep(0.01)
    verdict = monitor.readiness_now()
    assert verdict is not None and not verdict[0] and "disk space critical" in verdict[1][0]


def test_refreshes_started_by_readiness_now_run_where_the_caller_says(
    monitor: HealthMonitor, host: FakeHost, clock: ManualClock
) -> None:
    monitor.readiness()
    host.free_mb = 1
    clock.advance(0.8)
    jobs: list[Callable[[], None]] = []

    assert monitor.readiness_now(jobs.append) == (True, [])  # nothing ran on the caller's thread
    assert jobs, "the refresh was handed to the caller's pool"
    for job in jobs:
        job()
    verdict = monitor.readiness_now(jobs.append)
    assert verdict is not None and "disk space critical" in verdict[1][0]


def test_backups_coming_and_going_do_not_reread_a_readable_state(
    project: Path, monitor: HealthMonitor, state_reads: list[str]
) -> None:
    monitor.readiness()
    (project / ".cde" / "backups" / "unrelated.tmp").write_text("x")
    shutil.rmtree(project / ".cde" / "backups")

    assert monitor.readiness_now() == (True, [])  # a readable state does not depend on its backups
    assert len(state_reads) == 1


def test_just_past_its_time_to_live_a_disk_reading_answers_while_it_is_refreshed(
    monitor: HealthMonitor, host: FakeHost, clock: ManualClock
) -> None:
    monitor.readiness()
    host.free_mb = 1
    clock.advance(1.2)  # expired 0.2 s ago: within the grace
    jobs: list[Callable[[], None]] = []

    assert monitor.readiness_now(jobs.append) == (True, [])
    assert jobs, "expired readings are refreshed in the background"  # the disk's, and the write probe's
    for job in jobs:
        job()
    verdict = monitor.readiness_now(jobs.append)
    assert verdict is not None and "disk space critical" in verdict[1][0]
