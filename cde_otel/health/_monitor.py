"""The health monitor: probes, percentiles from the OTel histograms, checks, alerts, status.

    from cde_otel.health import HealthMonitor

    monitor = HealthMonitor("/path/to/project")
    status = monitor.get_status()     # {"status": "healthy", "metrics": {...}, "checks": {...}, ...}
    ready, reasons = monitor.readiness()

Everything the monitor reads is injectable (``metric_reader``, ``disk_probe``,
``memory_probe``, ``read_only``, ``breakers``, ``telemetry_export``, ``clock``); the
defaults read the real process, filesystem and the package's telemetry.

Rules (thresholds from settings ``alert_*``):

* ``disk_space``: ``warning`` below ``alert_disk_free_mb`` MiB free, ``critical`` below a
  tenth of it (10 MiB by default) — at that point a state save is likely to fail.
* ``memory``: ``warning`` above ``alert_memory_percent`` % of system memory in use,
  ``critical`` above halfway between it and 100 % (90 % by default).
* Alerts: error rate above ``alert_error_rate``, any operation's P99 above
  ``alert_p99_s``, disk below the free-space threshold, memory above its threshold.
  Error rate and percentiles are cumulative since the process started (the histograms
  are cumulative); throughput is the operation count delta between two collections.
* ``status``: ``unhealthy`` when read-only, disk critical or the state directory is not
  writable; ``degraded`` when an alert fires, a circuit breaker is open or a probe
  failed; else ``healthy``.

Expensive probes (``.cde`` walk, psutil, the probe write, the state read, metric
collection) are cached for ``cache_ttl`` seconds (default 1 s).
"""

from __future__ import annotations

import collections
import importlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.metrics.export import (
    ExponentialHistogramDataPoint,
    HistogramDataPoint,
    MetricReader,
)

from cde_otel._exceptions import CDEError, ProjectError, error_for
from cde_otel._version import __version__
from cde_otel.core.repository import FileSystemProjectRepository, state_paths
from cde_otel.errors import ErrorFormatter
from cde_otel.health._percentiles import OperationStats, summarize
from cde_otel.health._probes import (
    _PROCESS,
    MIB,
    DiskProbe,
    DiskReading,
    MemoryProbe,
    MemoryReading,
    TTLCache,
    default_disk_probe,
    default_memory_probe,
    probe_state_writable,
)
from cde_otel.semconv import ATTR_OPERATION, ATTR_OUTCOME, METRIC_OPERATION_DURATION, OUTCOME_ERROR
from cde_otel.settings import Settings, load_settings

ReadOnlyProbe = Callable[[], "bool | str | None"]
BreakerProbe = Callable[[], Mapping[str, Any]]
ExportProbe = Callable[[], "str | bool | None"]
ReaderSource = MetricReader | Callable[[], MetricReader | None]


def _utc_now() -> str:
    return datetime.now(UTC).isoformat()


def _resilience_breakers() -> Mapping[str, Any]:
    """Breaker states from ``cde_otel.resilience.breakers()``; ``{}`` while that layer lacks it."""
    try:
        module = importlib.import_module("cde_otel.resilience")
    except ImportError:
        return {}
    breakers = getattr(module, "breakers", None)
    return breakers() if callable(breakers) else {}


def _telemetry_export_status() -> str | bool | None:
    """``cde_otel.telemetry.export_status()`` when telemetry is loaded and offers it, else disabled."""
    module = sys.modules.get("cde_otel.telemetry")
    status = getattr(module, "export_status", None) if module is not None else None
    return status() if callable(status) else "disabled"


def _telemetry_reader() -> MetricReader | None:
    """The pull reader ``cde_otel.telemetry.health_metric_reader()`` once telemetry is configured."""
    module = sys.modules.get("cde_otel.telemetry")
    reader = getattr(module, "health_metric_reader", None) if module is not None else None
    result = reader() if callable(reader) else None
    return result if isinstance(result, MetricReader) else None


@dataclass(frozen=True, slots=True)
class _MetricsSnapshot:
    at: float
    total: int
    errors: int
    operations: dict[str, OperationStats]
    throughput: float


@dataclass(frozen=True, slots=True)
class _Condition:
    key: str
    name: str
    severity: str
    message: str
    value: float
    threshold: float


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
    ) -> None:
        path = Path(project_path if project_path is not None else os.getcwd()).expanduser()
        if not path.is_dir():
            raise ProjectError(f"project path {path} does not exist or is not a directory", "E001", {"path": str(path)})
        self.project_path = path.resolve()
        self.settings = settings or load_settings()
        self.repository = repository or FileSystemProjectRepository()
        self._clock = clock
        self._reader_source: ReaderSource = metric_reader if metric_reader is not None else _telemetry_reader
        self._breakers = breakers or _resilience_breakers
        self._read_only = read_only or self._repository_read_only
        self._telemetry_export = telemetry_export or _telemetry_export_status
        disk = disk_probe or default_disk_probe
        self._disk = TTLCache(lambda: disk(self.project_path), cache_ttl, clock)
        self._memory = TTLCache(memory_probe or default_memory_probe, cache_ttl, clock)
        self._writable = TTLCache(lambda: probe_state_writable(self.project_path), cache_ttl, clock)
        self._features = TTLCache(self._count_active_features, cache_ttl, clock)
        self._metrics = TTLCache(self._collect_metrics, cache_ttl, clock)
        self._previous: _MetricsSnapshot | None = None
        # Under the real clock, uptime is the process's, not this object's.
        age = time.time() - _PROCESS.create_time() if clock is time.monotonic else 0.0
        self._started = clock() - max(age, 0.0)
        self._status_lock = threading.Lock()
        self._firing: dict[str, dict[str, Any]] = {}
        self.alert_history: collections.deque[dict[str, Any]] = collections.deque(maxlen=history_size)

    # -- public ----------------------------------------------------------------------
    def get_status(self) -> dict[str, Any]:
        """The full status document (JSON-serialisable)."""
        with self._status_lock:
            reasons: list[str] = []
            disk, disk_state = self._disk_check(reasons)
            memory, memory_state = self._memory_check(reasons)
            writable = self._writable_check(reasons)
            read_only = self._read_only_check(reasons)
            breakers = self._breaker_states(reasons)
            export = self._export_state(reasons)
            active = self._active_features(reasons)
            snapshot = self._metrics_snapshot(reasons)
            error_rate = snapshot.errors / snapshot.total if snapshot and snapshot.total else 0.0
            conditions = self._conditions(
                disk=disk,
                disk_state=disk_state,
                memory=memory,
                memory_state=memory_state,
                error_rate=error_rate,
                snapshot=snapshot,
            )
            self._update_alerts(conditions)

            unhealthy = read_only or disk_state == "critical" or writable is False
            open_breakers = [name for name, state in breakers.items() if state == "open"]
            degraded = bool(self._firing) or bool(open_breakers) or bool(reasons)
            reasons.extend(f"circuit breaker {name} is open" for name in open_breakers)
            reasons.extend(alert["message"] for alert in self._firing.values())
            return {
                "status": "unhealthy" if unhealthy else "degraded" if degraded else "healthy",
                "version": __version__,
                "uptime_seconds": round(self._clock() - self._started, 3),
                "project_path": str(self.project_path),
                "metrics": {
                    "memory_mb": _mb(memory.rss_bytes) if memory else None,
                    "disk_mb": _mb(disk.cde_bytes) if disk else None,
                    "disk_free_mb": _mb(disk.free_bytes) if disk else None,
                    "active_features": active,
                    "error_rate": error_rate,
                    "throughput_ops_per_s": snapshot.throughput if snapshot else 0.0,
                    "operations": {name: s.as_dict() for name, s in sorted(snapshot.operations.items())}
                    if snapshot
                    else {},
                },
                "checks": {
                    "state_file_writable": writable,
                    "disk_space": disk_state,
                    "memory": memory_state,
                    "read_only": read_only,
                    "circuit_breakers": breakers,
                    "telemetry_export": export,
                },
                "reasons": reasons,
                "alerts": [dict(alert) for alert in self._firing.values()],
                "alert_history": list(self.alert_history),
            }

    def readiness(self) -> tuple[bool, list[str]]:
        """(ready, reasons): not ready when read-only, disk critical or the state is not writable.

        Uses only the cached probes that decide ``unhealthy`` — no metric collection — so
        it is cheap enough for a load balancer to poll.
        """
        reasons: list[str] = []
        _, disk_state = self._disk_check(reasons)
        writable = self._writable_check(reasons, wait=False)  # the fsync probe refreshes in the background
        read_only = self._read_only_check(reasons)
        ready = not read_only and disk_state != "critical" and writable
        return ready, [] if ready else reasons

    def metrics(self) -> dict[str, Any]:
        """The ``metrics`` block of :meth:`get_status`."""
        metrics: dict[str, Any] = self.get_status()["metrics"]
        return metrics

    # -- probes ------------------------------------------------------------------------
    def _disk_check(self, reasons: list[str]) -> tuple[DiskReading | None, str]:
        try:
            disk = self._disk.get()
        except OSError as exc:
            reasons.append(f"disk probe failed: {exc.strerror or exc}")
            return None, "unknown"
        warning_mb = float(self.settings.alert_disk_free_mb)
        free_mb = disk.free_bytes / MIB
        if free_mb < warning_mb / 10:
            reasons.append(f"disk space critical: {free_mb:.1f} MiB free at {self.project_path}")
            return disk, "critical"
        return disk, "warning" if free_mb < warning_mb else "ok"

    def _memory_check(self, reasons: list[str]) -> tuple[MemoryReading | None, str]:
        try:
            memory = self._memory.get()
        except (OSError, RuntimeError) as exc:
            reasons.append(f"memory probe failed: {exc}")
            return None, "unknown"
        warning = float(self.settings.alert_memory_percent)
        critical = warning + (100.0 - warning) / 2
        if memory.system_percent > critical:
            return memory, "critical"
        return memory, "warning" if memory.system_percent > warning else "ok"

    def _writable_check(self, reasons: list[str], *, wait: bool = True) -> bool:
        writable, why = self._writable.get(wait=wait)
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
        # The repository's {path: reason} of projects in read-only mode; pass the app's own
        # repository (``repository=``) so its read-only state is what health reports.
        projects = getattr(self.repository, "read_only_projects", None)
        if isinstance(projects, Mapping):
            return projects.get(str(self.project_path))
        return False

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

    def _active_features(self, reasons: list[str]) -> int | None:
        try:
            return self._features.get()
        except CDEError as exc:
            reasons.append(f"project state unreadable: {exc}")
            return None

    def _count_active_features(self) -> int:
        _, state_file, _ = state_paths(self.project_path)
        if not state_file.exists():
            return 0
        # Health's own read is not an application operation: ask instrumentation to skip it.
        with suppress_instrumentation():
            project = self.repository.get_by_path(self.project_path)
        return len(project.get_active_features()) if project is not None else 0

    # -- metrics -----------------------------------------------------------------------
    def _metrics_snapshot(self, reasons: list[str]) -> _MetricsSnapshot | None:
        try:
            return self._metrics.get()
        except Exception as exc:  # the SDK reader failing must not take health down
            reasons.append(f"metric collection failed: {exc}")
            return None

    def _reader(self) -> MetricReader | None:
        if isinstance(self._reader_source, MetricReader):
            return self._reader_source
        return self._reader_source()

    def _collect_metrics(self) -> _MetricsSnapshot:
        now = self._clock()
        points: dict[str, list[ExponentialHistogramDataPoint | HistogramDataPoint]] = collections.defaultdict(list)
        errors: dict[str, int] = collections.defaultdict(int)
        reader = self._reader()
        data = reader.get_metrics_data() if reader is not None and hasattr(reader, "get_metrics_data") else None
        for resource_metrics in data.resource_metrics if data is not None else ():
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name != METRIC_OPERATION_DURATION:
                        continue
                    for point in metric.data.data_points:
                        if not isinstance(point, ExponentialHistogramDataPoint | HistogramDataPoint):
                            continue
                        attributes = point.attributes or {}
                        operation = str(attributes.get(ATTR_OPERATION, "unknown"))
                        points[operation].append(point)
                        if attributes.get(ATTR_OUTCOME) == OUTCOME_ERROR:
                            errors[operation] += point.count
        operations = {op: summarize(found, errors=errors[op]) for op, found in points.items()}
        total = sum(s.count for s in operations.values())
        previous = self._previous
        if previous is None or now <= previous.at:
            elapsed = now - self._started
            throughput = total / elapsed if elapsed > 0 else 0.0
        else:
            throughput = max(total - previous.total, 0) / (now - previous.at)
        snapshot = _MetricsSnapshot(now, total, sum(errors.values()), operations, throughput)
        self._previous = snapshot
        return snapshot

    # -- alerts ------------------------------------------------------------------------
    def _conditions(
        self,
        *,
        disk: DiskReading | None,
        disk_state: str,
        memory: MemoryReading | None,
        memory_state: str,
        error_rate: float,
        snapshot: _MetricsSnapshot | None,
    ) -> list[_Condition]:
        s = self.settings
        found: list[_Condition] = []
        if snapshot is not None and snapshot.total and error_rate > s.alert_error_rate:
            found.append(_Condition("CDEHighErrorRate", "CDEHighErrorRate", "warning",
                                    f"error rate {error_rate:.1%} is above {s.alert_error_rate:.1%}",
                                    error_rate, float(s.alert_error_rate)))  # fmt: skip
        for name, stats in sorted(snapshot.operations.items()) if snapshot else ():
            if stats.p99 is not None and stats.p99 > s.alert_p99_s:
                found.append(_Condition(f"CDESlowOperation:{name}", "CDESlowOperation", "warning",
                                        f"{name} P99 {stats.p99:.3f}s is above {s.alert_p99_s}s",
                                        stats.p99, float(s.alert_p99_s)))  # fmt: skip
        if disk is not None and disk_state in ("warning", "critical"):
            free_mb = disk.free_bytes / MIB
            found.append(_Condition("CDEDiskSpaceLow", "CDEDiskSpaceLow", disk_state,
                                    f"{free_mb:.1f} MiB free at the project, below {s.alert_disk_free_mb} MiB",
                                    round(free_mb, 3), float(s.alert_disk_free_mb)))  # fmt: skip
        if memory is not None and memory_state in ("warning", "critical"):
            found.append(_Condition("CDEMemoryHigh", "CDEMemoryHigh", memory_state,
                                    f"system memory {memory.system_percent:.1f}% used, above "
                                    f"{s.alert_memory_percent}%",
                                    memory.system_percent, float(s.alert_memory_percent)))  # fmt: skip
        return found

    def _update_alerts(self, conditions: list[_Condition]) -> None:
        now = _utc_now()
        current = {c.key: c for c in conditions}
        for key in [k for k in self._firing if k not in current]:
            alert = self._firing.pop(key)
            self.alert_history.append({**_transition(alert), "state": "resolved", "at": now})
        for key, c in current.items():
            alert = {"name": c.name, "severity": c.severity, "message": c.message,
                     "value": c.value, "threshold": c.threshold}  # fmt: skip
            if ":" in key:
                alert["operation"] = key.split(":", 1)[1]
            previous = self._firing.get(key)
            alert["since"] = previous["since"] if previous else now
            self._firing[key] = alert
            if previous is None or previous["severity"] != c.severity:
                self.alert_history.append({**_transition(alert), "state": "firing", "at": now})


def _transition(alert: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("name", "operation", "severity", "value", "threshold", "message")
    return {k: alert[k] for k in keys if k in alert}


def _mb(value: int) -> float:
    return round(value / MIB, 3)


# -- process-wide default (the MCP tool) -------------------------------------------------
_DEFAULTS: dict[Path, HealthMonitor] = {}
_DEFAULTS_LOCK = threading.Lock()


def default_monitor(project_path: str | os.PathLike[str] | None = None) -> HealthMonitor:
    """The process-wide monitor of ``project_path`` (default: the current directory)."""
    path = Path(project_path if project_path is not None else os.getcwd()).expanduser().resolve()
    with _DEFAULTS_LOCK:
        monitor = _DEFAULTS.get(path)
        if monitor is None:
            monitor = _DEFAULTS[path] = HealthMonitor(path)
        return monitor


def get_health_status(project_path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The status of ``project_path`` (default: the current directory) from the default monitor."""
    return default_monitor(project_path).get_status()


def cde_getHealth(project_path: str | None = None) -> str:
    """Health status as pretty JSON, for an MCP tool. Never raises: failures come back coded."""
    try:
        status = get_health_status(project_path)
    except CDEError as exc:
        status = {"status": "unhealthy", "version": __version__, "error": error_summary(exc)}
    except Exception as exc:  # an MCP tool must answer, not crash the server
        status = {"status": "unhealthy", "version": __version__, "error": error_summary(exc)}
    return json.dumps(status, indent=2, default=_json_default)


def error_summary(exc: BaseException) -> dict[str, Any]:
    """The user-facing error JSON of ``exc`` (``ErrorFormatter.to_json``: coded, no traceback)."""
    try:
        return ErrorFormatter.to_json(exc)
    except Exception:  # the formatter failing must not turn a 500 into a dropped connection
        error = exc if isinstance(exc, CDEError) else error_for("E902", f"unexpected {type(exc).__name__}")
        return {"code": error.code, "name": error.name, "message": error.message, "recoverable": error.recoverable}


def _json_default(value: Any) -> Any:
    return str(value)
