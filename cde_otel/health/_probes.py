"""Cheap, injectable probes of the host and the project: disk, memory, state writability.

Each probe is a plain callable so tests (and embedders) can substitute one; the
monitor caches their results for a short time-to-live so the HTTP endpoints stay
fast under load.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import psutil

from cde_otel.core.repository import STATE_DIR

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


def probe_state_writable(project_path: Path) -> tuple[bool, str | None]:
    """Creates and removes a temp file where the state lives (``.cde``, else the project directory).

    Never creates ``.cde`` itself: a health check must not change the project. The temp
    file name matches the pattern the repository sweeps (``.*.tmp``), so a crash between
    create and unlink leaves nothing behind for long.
    """
    state_dir = project_path / STATE_DIR
    target = state_dir if state_dir.is_dir() else project_path
    try:
        fd, name = tempfile.mkstemp(prefix=".health-probe.", suffix=".tmp", dir=target)
        try:
            os.write(fd, b"ok")
        finally:
            os.close(fd)
            Path(name).unlink(missing_ok=True)
    except OSError as exc:
        return False, f"cannot write in {target}: {exc.strerror or exc}"
    return True, None


class TTLCache(Generic[T]):
    """Holds one value for ``ttl`` seconds of ``clock``; concurrent callers share one refresh."""

    def __init__(self, compute: Callable[[], T], ttl: float, clock: Callable[[], float]) -> None:
        self._compute = compute
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._value: T | None = None
        self._expires = -float("inf")
        self._filled = False

    def get(self) -> T:
        with self._lock:
            now = self._clock()
            if not self._filled or now >= self._expires:
                self._value = self._compute()
                self._filled = True
                self._expires = now + self._ttl
            return self._value  # type: ignore[return-value]

    def invalidate(self) -> None:
        with self._lock:
            self._filled = False
