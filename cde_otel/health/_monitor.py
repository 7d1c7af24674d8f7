"""The health monitor: runs the probes, collects the metrics, applies the rules, builds the status.

    from cde_otel.health import HealthMonitor

    monitor = HealthMonitor("/path/to/project")
    status = monitor.get_status()     # {"status": "healthy", "metrics": {...}, "checks": {...}, ...}
    ready, reasons = monitor.readiness()

Everything the monitor reads is injectable (``metric_reader``, ``disk_probe``,
``memory_probe``, ``read_only``, ``breakers``, ``telemetry_export``, ``clock``); the
defaults read the real process and filesystem, the circuit breakers of
:mod:`cde_otel.resilience`, and what telemetry registered (:mod:`cde_otel.health.sources`).

* ``status``: ``unhealthy`` when read-only, disk critical, the state directory is not
  writable, or the state cannot be loaded and no backup would restore it; ``degraded``
  when an alert fires, a circuit breaker is open or a probe failed (a damaged state that
  the application's next load restores from a backup included); else ``healthy``.
* Health only reads the project: its state read never recovers or rewrites anything
  (``recover_from_backups=False``), so no GET writes into the project beyond the
  writability probe's temporary file.
* The check and alert rules are in :mod:`cde_otel.health._alerts`; percentiles, error
  rate and throughput come from :mod:`cde_otel.health._metrics`.

Expensive probes (``.cde`` walk, psutil, the probe write, metric collection) are cached
for ``cache_ttl`` seconds (default 1 s). The state read (load, parse, checksum) is cached
for as long as ``stat`` shows ``state.json`` unchanged (device, inode, type, mode, owner,
size, mtime and ctime in ns) — and, while the state is damaged, ``backups/`` too, which
decides whether the next load restores it — re-checked on every call, and at most
``STATE_MAX_AGE_S`` (30 s) regardless: a state that becomes unreadable is seen by the very
next readiness check, without re-reading an unchanged file on each one. The read runs in its own
thread and is waited for ``state_read_timeout_s`` (2 s) at most: a storage that hangs makes the
project "not ready" (one stuck read at a time, never more). A state file that is not a regular
file (a FIFO) is refused unread (E214). (A project
directory that is removed or replaced changes ``state.json``'s ``stat`` too; one that only
loses its read permission is seen within ``STATE_MAX_AGE_S``.)

:meth:`HealthMonitor.readiness_now` answers readiness from those caches without ever
waiting (a few ``stat`` calls), or says it cannot; the HTTP server answers
``/health/ready`` on its event loop that way and hands the request to a worker otherwise.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.metrics.export import MetricReader

from cde_otel._exceptions import CDEError, ProjectError
from cde_otel._version import __version__
from cde_otel.core.repository import FileSystemProjectRepository
from cde_otel.core.state import state_paths
from cde_otel.health import sources
from cde_otel.health._alerts import AlertTracker, conditions, disk_state, memory_state
from cde_otel.health._metrics import MetricsCollector, MetricsSnapshot
from cde_otel.health._probes import (
    MIB,
    DiskProbe,
    DiskReading,
    FileKeyedCache,
    InFlight,
    MemoryProbe,
    MemoryReading,
    Missing,
    Spawn,
    TTLCache,
    default_disk_probe,
    default_memory_probe,
    in_new_thread,
    probe_state_writable,
    process_age_s,
)
from cde_otel.settings import Settings, load_settings

ReadOnlyProbe = Callable[[], "bool | str | None"]
BreakerProbe = Callable[[], Mapping[str, Any]]
ExportProbe = Callable[[], "str | bool | None"]
ReaderSource = MetricReader | Callable[[], MetricReader | None]
#: Load errors the repository repairs from a backup on its next load (corrupt, invalid, unsupported).
_RESTORED_ON_LOAD = frozenset({"E203", "E204", "E205"})
#: How far past its time-to-live (as a fraction of it) ``readiness_now`` still uses a disk reading.
DISK_GRACE = 0.5
#: The longest a state reading is trusted while ``stat`` shows its files unchanged.
STATE_MAX_AGE_S = 30.0
#: How long readiness waits for the state to be read before it answers "not ready" (a hung storage).
STATE_READ_TIMEOUT_S = 2.0
Readiness = tuple[bool, list[str]]
WriteProbe = tuple[bool, "str | None"]


@dataclass(frozen=True, slots=True)
class _StateReading:
    active_features: int | None
    problem: str | None = None  # why the state cannot be loaded as it is
    restorable: bool = False  # the application's next load restores it from a valid backup

    @property
    def blocking(self) -> bool:
        return self.problem is not None and not self.restorable


class HealthMonitor:
    """Computes the health status of one project and of this process."""

    def __init__(
        self,
        project_path: str | os.PathLike[str] | None = None,
        *,
        metric_reader: ReaderSource | None = None,
        repository: FileSystemProjectRepository | None = None,
        disk_probe: DiskProbe | None = None,
        memory_probe: MemoryProbe | None = None,
        settings: Settings | None = None,
        clock: Callable[[], float] = time.monotonic,
        breakers: BreakerProbe | None = None,
        read_only: ReadOnlyProbe | None = None,
        telemetry_export: ExportProbe | None = None,
        cache_ttl: float = 1.0,
        history_size: int = 100,
        state_read_timeout_s: float = STATE_READ_TIMEOUT_S,
    ) -> None:
        path = Path(project_path if project_path is not None else os.getcwd()).expanduser()
        if not path.is_dir():
            raise ProjectError(f"project path {path} does not exist or is not a directory", "E001", {"path": str(path)})
        self.project_path = path.resolve()
        self.settings = settings or load_settings()
        self.repository = repository or FileSystemProjectRepository()
        self._clock = clock
        reader = metric_reader if metric_reader is not None else sources.telemetry_metric_reader
        self._breakers = breakers or sources.breaker_states
        self._read_only = read_only or self._repository_read_only
        self._telemetry_export = telemetry_export or sources.telemetry_export_status
        disk = disk_probe or default_disk_probe
        self._disk = TTLCache(lambda: disk(self.project_path), cache_ttl, clock)
        # readiness_now() answers from a disk reading up to half a time-to-live past it, refreshing it meanwhile.
        self._disk_grace = cache_ttl * DISK_GRACE
        self._memory = TTLCache(memory_probe or default_memory_probe, cache_ttl, clock)
        self._writable = TTLCache(lambda: probe_state_writable(self.project_path), cache_ttl, clock)
        _, state_file, backup_dir = state_paths(self.project_path)
        # Every check stat()s state.json; backups/ too while the state is damaged (whether a backup restores it).
        self._state = FileKeyedCache(
            self._read_state,
            (str(state_file), str(backup_dir)),
            clock,
            max(cache_ttl, STATE_MAX_AGE_S),
            depends=lambda reading: (0,) if reading.problem is None else (0, 1),
        )
        # Under the real clock, uptime is the process's, not this object's.
        self._started = clock() - (process_age_s() if clock is time.monotonic else 0.0)
        collector = MetricsCollector(_reader_getter(reader), clock, self._started)
        self._metrics = TTLCache(collector.collect, cache_ttl, clock)
        self.state_read_timeout_s = float(state_read_timeout_s)
        self._state_read = InFlight(self._state.get, "cde-otel-health-state")  # one stuck read at most
        self._status_lock = threading.Lock()
        self._alerts = AlertTracker(history_size)
        self.alert_history = self._alerts.history

    # -- public ----------------------------------------------------------------------
    def get_status(self) -> dict[str, Any]:
        """The full status document (JSON-serialisable)."""
        with self._status_lock:
            reasons: list[str] = []
            disk, disk_level = self._disk_check(self._disk_reading(), reasons)
            memory, memory_level = self._memory_check(reasons)
            writable = self._writable_check(self._writable.get(), reasons)
            read_only = self._read_only_check(reasons)
            breakers = self._breaker_states(reasons)
            export = self._export_state(reasons)
            reading = self._state_check(self._state_reading(), reasons)
            active = reading.active_features
            snapshot = self._metrics_snapshot(reasons)
            self._alerts.update(conditions(self.settings, disk=disk, memory=memory, snapshot=snapshot))

            unhealthy = read_only or disk_level == "critical" or writable is False or reading.blocking
            open_breakers = [name for name, state in breakers.items() if state == "open"]
            alerts = self._alerts.alerts()
            degraded = bool(alerts) or bool(open_breakers) or bool(reasons)
            reasons.extend(f"circuit breaker {name} is open" for name in open_breakers)
            reasons.extend(alert["message"] for alert in alerts)
            return {
                "status": "unhealthy" if unhealthy else "degraded" if degraded else "healthy",
                "version": __version__,
                "uptime_seconds": round(self._clock() - self._started, 3),
                "project_path": str(self.project_path),
                "metrics": _metrics_block(disk, memory, active, snapshot),
                "checks": {
                    "state_file_writable": writable,
                    "disk_space": disk_level,
                    "memory": memory_level,
                    "read_only": read_only,
                    "circuit_breakers": breakers,
                    "telemetry_export": export,
                },
                "reasons": reasons,
                "alerts": alerts,
                "alert_history": list(self.alert_history),
            }

    def readiness(self) -> Readiness:
        """(ready, reasons): not ready when read-only, disk critical, the state is not writable, or
        the state cannot be loaded and no backup would restore it.

        Uses only the cached probes that decide ``unhealthy`` — no metric collection — so
        it is cheap enough for a load balancer to poll. The fsync probe refreshes in the
        background (its last result answers meanwhile); the disk reading is refreshed when its
        time-to-live ran out, and the state is read again when its files changed.
        """
        return self._verdict(self._disk_reading(), self._writable.get(wait=False), self._state_reading())

    def readiness_now(self, spawn: Spawn = in_new_thread) -> Readiness | None:
        """What :meth:`readiness` would return, if every reading it needs is cached and current; else None.

        Never computes a probe and never waits for a lock (a few ``stat`` calls): the HTTP
        server calls it on its event loop and hands the request to a worker, which calls
        :meth:`readiness`, only when it is None — at the first request, when the disk reading is
        more than ``DISK_GRACE`` of a time-to-live past it (until then it answers and refreshes
        the reading in the background), or when ``stat`` shows the state files changed (or the
        state reading is ``STATE_MAX_AGE_S`` old). A subclass that overrides :meth:`readiness` always
        gets None, so that its own method answers. A probe refresh it starts (late in a reading's
        time-to-live) runs through ``spawn``: a new daemon thread, or the caller's worker pool.
        """
        if type(self).readiness is not HealthMonitor.readiness:
            return None
        if self._state_read.running:  # a state read is stuck: do not stat the same storage on the caller's loop
            return None
        disk = self._disk_reading(peek=True, spawn=spawn)
        writable = self._writable.peek(grace=math.inf, spawn=spawn)  # as readiness(): never waits for an fsync
        reading = self._state_reading(peek=True)
        if isinstance(disk, Missing) or isinstance(writable, Missing) or isinstance(reading, Missing):
            return None
        return self._verdict(disk, writable, reading)

    def _verdict(
        self, disk: DiskReading | OSError | Missing, writable: WriteProbe, reading: _StateReading | Missing
    ) -> Readiness:
        reasons: list[str] = []
        _, disk_level = self._disk_check(disk, reasons)
        is_writable = self._writable_check(writable, reasons)
        read_only = self._read_only_check(reasons)
        state = self._state_check(reading, reasons)
        ready = not read_only and disk_level != "critical" and is_writable and not state.blocking
        return ready, [] if ready else reasons

    def metrics(self) -> dict[str, Any]:
        """The ``metrics`` block of :meth:`get_status`."""
        metrics: dict[str, Any] = self.get_status()["metrics"]
        return metrics

    # -- readings: a probe's cached value (peek=True: MISSING rather than compute or wait) ----
    def _disk_reading(self, *, peek: bool = False, spawn: Spawn = in_new_thread) -> DiskReading | OSError | Missing:
        try:
            return self._disk.peek(grace=self._disk_grace, spawn=spawn) if peek else self._disk.get()
        except OSError as exc:
            return exc

    def _state_reading(self, *, peek: bool = False) -> _StateReading | Missing:
        try:
            held = self._state.peek()
            if peek or not isinstance(held, Missing):
                return held
        except Exception as exc:  # a broken probe must not break health itself
            return _StateReading(None, f"state probe failed: {exc}")
        return self._state_within_deadline()

    def _state_within_deadline(self) -> _StateReading:
        """The state read, in its own daemon thread, waited for ``state_read_timeout_s`` at most.

        A storage that hangs (a stale network mount) makes readiness "not ready", never a stuck request.
        """
        try:
            return self._state_read.result(self.state_read_timeout_s)
        except TimeoutError:
            return _StateReading(None, f"reading the state took over {self.state_read_timeout_s:g}s (storage hanging?)")
        except Exception as exc:  # a broken probe must not break health itself
            return _StateReading(None, f"state probe failed: {exc}")

    def _read_state(self) -> _StateReading:
        # A reader that never recovers: health must not rewrite the state it reports on.
        reader = FileSystemProjectRepository(recover_from_backups=False)
        # Health's own read is not an application operation: ask instrumentation to skip it.
        with suppress_instrumentation():
            try:
                project = reader.get_by_path(self.project_path)
            except CDEError as exc:
                restorable = exc.code in _RESTORED_ON_LOAD and self._has_valid_backup(reader)
                return _StateReading(None, str(exc), restorable)
        return _StateReading(len(project.get_active_features()) if project is not None else 0)

    # -- checks: a reading's verdict, with its reason ---------------------------------------
    def _disk_check(self, disk: DiskReading | OSError | Missing, reasons: list[str]) -> tuple[DiskReading | None, str]:
        if isinstance(disk, OSError):
            reasons.append(f"disk probe failed: {disk.strerror or disk}")
            return None, "unknown"
        assert isinstance(disk, DiskReading)  # get() never returns MISSING
        level = disk_state(disk, self.settings.alert_disk_free_mb)
        if level == "critical":
            reasons.append(f"disk space critical: {disk.free_bytes / MIB:.1f} MiB free at {self.project_path}")
        return disk, level

    def _memory_check(self, reasons: list[str]) -> tuple[MemoryReading | None, str]:
        try:
            memory = self._memory.get()
        except (OSError, RuntimeError) as exc:
            reasons.append(f"memory probe failed: {exc}")
            return None, "unknown"
        return memory, memory_state(memory, self.settings.alert_memory_percent)

    def _writable_check(self, result: WriteProbe, reasons: list[str]) -> bool:
        writable, why = result
        if not writable:
            reasons.append(f"state not writable: {why}")
        return writable

    def _read_only_check(self, reasons: list[str]) -> bool:
        try:
            flag = self._read_only()
        except Exception as exc:  # a broken probe must not break health itself
            reasons.append(f"read-only probe failed: {exc}")
            return False
        if flag:
            reasons.append(f"read-only: {flag if isinstance(flag, str) else 'persistence is failing'}")
        return bool(flag)

    def _repository_read_only(self) -> bool | str | None:
        # Pass the app's own repository (``repository=``) so its read-only state is what health reports.
        return self.repository.read_only_projects.get(str(self.project_path))

    def _breaker_states(self, reasons: list[str]) -> dict[str, str]:
        try:
            states = self._breakers()
        except Exception as exc:
            reasons.append(f"circuit breaker probe failed: {exc}")
            return {}
        return {str(name): str(getattr(state, "name", state)).lower() for name, state in states.items()}

    def _export_state(self, reasons: list[str]) -> str:
        try:
            state = self._telemetry_export()
        except Exception as exc:
            reasons.append(f"telemetry export probe failed: {exc}")
            return "unknown"
        if state is None:
            return "disabled"
        if isinstance(state, bool):
            return "ok" if state else "failing"
        return str(state)

    def _state_check(self, reading: _StateReading | Missing, reasons: list[str]) -> _StateReading:
        assert isinstance(reading, _StateReading)  # get() never returns MISSING
        if reading.problem is not None:
            restored = "; the next load restores it from a backup" if reading.restorable else ""
            reasons.append(f"project state unreadable: {reading.problem}{restored}")
        return reading

    def _has_valid_backup(self, reader: FileSystemProjectRepository) -> bool:
        """Whether the application's next load restores the state: a valid backup of this same project."""
        try:
            return reader.recovery_backup(self.project_path) is not None
        except CDEError:
            return False

    def _metrics_snapshot(self, reasons: list[str]) -> MetricsSnapshot | None:
        try:
            return self._metrics.get()
        except Exception as exc:  # the SDK reader failing must not take health down
            reasons.append(f"metric collection failed: {exc}")
            return None


def _reader_getter(source: ReaderSource) -> Callable[[], MetricReader | None]:
    if isinstance(source, MetricReader):
        return lambda: source
    return source


def _metrics_block(
    disk: DiskReading | None, memory: MemoryReading | None, active: int | None, snapshot: MetricsSnapshot | None
) -> dict[str, Any]:
    return {
        "memory_mb": _mb(memory.rss_bytes) if memory else None,
        "disk_mb": _mb(disk.cde_bytes) if disk else None,
        "disk_free_mb": _mb(disk.free_bytes) if disk else None,
        "active_features": active,
        "error_rate": snapshot.error_rate if snapshot else 0.0,
        "throughput_ops_per_s": snapshot.throughput if snapshot else 0.0,
        "operations": {name: s.as_dict() for name, s in sorted(snapshot.operations.items())} if snapshot else {},
    }


def _mb(value: int) -> float:
    return round(value / MIB, 3)
