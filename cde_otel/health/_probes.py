"""Cheap, injectable probes of the host and the project: disk, memory, state writability.

Each probe is a plain callable so tests (and embedders) can substitute one; the
monitor caches their results for a short time-to-live so the HTTP endpoints stay
fast under load.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import psutil

from cde_otel.core import storage
from cde_otel.core.state import STATE_DIR

T = TypeVar("T")
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class DiskReading:
    """Free bytes on the filesystem holding the project, and bytes used by its ``.cde`` directory."""

    free_bytes: int
    cde_bytes: int


@dataclass(frozen=True, slots=True)
class MemoryReading:
    """This process's resident set size and the system-wide memory use in percent."""

    rss_bytes: int
    system_percent: float


DiskProbe = Callable[[Path], DiskReading]
MemoryProbe = Callable[[], MemoryReading]


def directory_size(directory: Path) -> int:
    """Bytes of the regular files under ``directory`` (0 when it does not exist)."""
    total = 0
    for root, _dirs, files in os.walk(directory, onerror=lambda _exc: None):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue  # removed while walking (a backup rotated away, a temp file renamed)
    return total


def default_disk_probe(project_path: Path) -> DiskReading:
    return DiskReading(
        free_bytes=shutil.disk_usage(project_path).free,
        cde_bytes=directory_size(project_path / STATE_DIR),
    )


_PROCESS = psutil.Process()


def default_memory_probe() -> MemoryReading:
    return MemoryReading(rss_bytes=_PROCESS.memory_info().rss, system_percent=psutil.virtual_memory().percent)


def process_age_s() -> float:
    """Seconds since this process started (0 if the OS will not say)."""
    try:
        return max(time.time() - _PROCESS.create_time(), 0.0)
    except (psutil.Error, OSError):
        return 0.0


def probe_state_writable(project_path: Path) -> tuple[bool, str | None]:
    """Proves the state directory (``.cde``, else the project directory) accepts a durable write.

    The same probe the repository uses to leave read-only mode (write + fsync + unlink, so
    a full disk shows up even with delayed allocation). Never creates ``.cde`` itself: a
    health check must not change the project.
    """
    state_dir = project_path / STATE_DIR
    target = state_dir if state_dir.is_dir() else project_path
    try:
        storage.probe_write(target)
    except OSError as exc:
        return False, f"cannot write in {target}: {exc.strerror or exc}"
    return True, None


class TTLCache(Generic[T]):
    """Holds one value for ``ttl`` seconds of ``clock``; concurrent callers share one refresh.

    ``get(wait=False)`` never blocks on a refresh once a value exists: it returns the
    stale value and refreshes in a background thread (stale-while-revalidate), so a slow
    probe (an fsync) does not land on a health request's latency.
    """

    def __init__(self, compute: Callable[[], T], ttl: float, clock: Callable[[], float]) -> None:
        self._compute = compute
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._value: T | None = None
        self._expires = -float("inf")
        self._filled = False
        self._refreshing = False

    def get(self, *, wait: bool = True) -> T:
        with self._lock:
            now = self._clock()
            if self._filled and (now < self._expires or not wait):
                if now >= self._expires and not self._refreshing:
                    self._refreshing = True
                    threading.Thread(target=self._refresh, name="cde-otel-health-probe", daemon=True).start()
                return self._value  # type: ignore[return-value]
            self._value = self._compute()
            self._filled = True
            self._expires = now + self._ttl
            return self._value

    def _refresh(self) -> None:
        try:
            value = self._compute()
        except Exception:  # keep serving the last value; the next synchronous get() raises it
            with self._lock:
                self._refreshing = False
            return
        with self._lock:
            self._value, self._filled = value, True
            self._expires = self._clock() + self._ttl
            self._refreshing = False

    def invalidate(self) -> None:
        with self._lock:
            self._filled = False
