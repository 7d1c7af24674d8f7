"""The check and alert rules, as pure functions of the readings (no I/O, no clock of their own).

Thresholds come from the ``alert_*`` settings:

* disk: ``warning`` below ``alert_disk_free_mb`` MiB free, ``critical`` below a tenth of it
  (10 MiB by default) — at that point a state save is likely to fail.
* memory: ``warning`` above ``alert_memory_percent`` % of system memory in use,
  ``critical`` above halfway between it and 100 % (90 % by default).
* alerts: error rate above ``alert_error_rate``, any operation's P99 above ``alert_p99_s``,
  disk below the free-space threshold, memory above its threshold. A value exactly at its
  threshold does not fire.

:class:`AlertTracker` turns the conditions of successive checks into firing alerts (with
the time they started) and a bounded history of firing/resolved transitions.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cde_otel.health._metrics import MetricsSnapshot
from cde_otel.health._probes import MIB, DiskReading, MemoryReading
from cde_otel.settings import Settings


@dataclass(frozen=True, slots=True)
class Condition:
    """One alert condition that holds now; ``key`` tells apart the same alert on two operations."""

    key: str
    name: str
    severity: str
    message: str
    value: float
    threshold: float
    operation: str | None = None


def disk_state(disk: DiskReading, warning_mb: float) -> str:
    free_mb = disk.free_bytes / MIB
    if free_mb < warning_mb / 10:
        return "critical"
    return "warning" if free_mb < warning_mb else "ok"


def memory_state(memory: MemoryReading, warning_percent: float) -> str:
    critical = warning_percent + (100.0 - warning_percent) / 2
    if memory.system_percent > critical:
        return "critical"
    return "warning" if memory.system_percent > warning_percent else "ok"


def conditions(
    settings: Settings,
    *,
    disk: DiskReading | None,
    memory: MemoryReading | None,
    snapshot: MetricsSnapshot | None,
) -> list[Condition]:
    """Every alert condition that holds for these readings, in a stable order."""
    s = settings
    found: list[Condition] = []
    if snapshot is not None and snapshot.total and snapshot.error_rate > s.alert_error_rate:
        rate = snapshot.error_rate
        message = f"error rate {rate:.1%} is above {s.alert_error_rate:.1%}"
        found.append(Condition("CDEHighErrorRate", "CDEHighErrorRate", "warning", message, rate, s.alert_error_rate))
    for name, stats in sorted(snapshot.operations.items()) if snapshot else ():
        if stats.p99 is not None and stats.p99 > s.alert_p99_s:
            message = f"{name} P99 {stats.p99:.3f}s is above {s.alert_p99_s}s"
            key = f"CDESlowOperation:{name}"
            found.append(Condition(key, "CDESlowOperation", "warning", message, stats.p99, s.alert_p99_s, name))
    disk_level = disk_state(disk, s.alert_disk_free_mb) if disk is not None else "ok"
    if disk is not None and disk_level != "ok":
        free_mb = disk.free_bytes / MIB
        message = f"{free_mb:.1f} MiB free at the project, below {s.alert_disk_free_mb} MiB"
        found.append(
            Condition(
                "CDEDiskSpaceLow", "CDEDiskSpaceLow", disk_level, message, round(free_mb, 3), s.alert_disk_free_mb
            )
        )
    memory_level = memory_state(memory, s.alert_memory_percent) if memory is not None else "ok"
    if memory is not None and memory_level != "ok":
        percent = memory.system_percent
        message = f"system memory {percent:.1f}% used, above {s.alert_memory_percent}%"
        found.append(
            Condition("CDEMemoryHigh", "CDEMemoryHigh", memory_level, message, percent, s.alert_memory_percent)
        )
    return found


def _utc_now() -> str:
    return datetime.now(UTC).isoformat()


class AlertTracker:
    """Firing alerts (``since`` kept while they keep firing) and the history of their transitions."""

    def __init__(self, history_size: int = 100, now: Callable[[], str] = _utc_now) -> None:
        self._now = now
        self.firing: dict[str, dict[str, Any]] = {}
        self.history: collections.deque[dict[str, Any]] = collections.deque(maxlen=history_size)

    def update(self, current: list[Condition]) -> None:
        """Resolves the alerts whose condition is gone, fires new ones, records severity changes."""
        now = self._now()
        by_key = {c.key: c for c in current}
        for key in [k for k in self.firing if k not in by_key]:
            resolved = self.firing.pop(key)
            self.history.append({**_transition(resolved), "state": "resolved", "at": now})
        for key, c in by_key.items():
            alert: dict[str, Any] = {"name": c.name, "severity": c.severity, "message": c.message,
                                     "value": c.value, "threshold": c.threshold}  # fmt: skip
            if c.operation is not None:
                alert["operation"] = c.operation
            previous = self.firing.get(key)
            alert["since"] = previous["since"] if previous else now
            self.firing[key] = alert
            if previous is None or previous["severity"] != c.severity:
                self.history.append({**_transition(alert), "state": "firing", "at": now})

    def alerts(self) -> list[dict[str, Any]]:
        return [dict(alert) for alert in self.firing.values()]


def _transition(alert: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("name", "operation", "severity", "value", "threshold", "message")
    return {k: alert[k] for k in keys if k in alert}
