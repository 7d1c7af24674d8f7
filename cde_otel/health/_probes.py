"""Cheap, injectable probes of the host and the project: disk, memory, state writability.

Each probe is a plain callable so tests (and embedders) can substitute one; the
monitor caches their results so the HTTP endpoints stay fast under load: for a short
time-to-live (:class:`TTLCache`), or for as long as the files they read are unchanged
(:class:`FileKeyedCache`). Both can be *peeked* without ever waiting, which is how the
HTTP server answers readiness on its event loop.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Generic, TypeVar

import psutil

from cde_otel.core import storage
from cde_otel.core.state import STATE_DIR

T = TypeVar("T")
MIB = 1024 * 1024
#: Runs a job in the background: a new daemon thread by default, or a caller's pool (``submit``).
Spawn = Callable[[Callable[[], None]], None]


def in_new_thread(job: Callable[[], None]) -> None:
    threading.Thread(target=job, name="cde-otel-health-probe", daemon=True).start()


class Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: What a cache's ``peek()`` returns when it cannot answer without computing (or waiting for) a value.
MISSING: Final = Missing()


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


class InFlight(Generic[T]):
    """Runs ``compute`` in its own daemon thread and waits for it up to a deadline.

    A run still going when the next caller comes (a read stuck on a hung storage) is waited for
    again, never started a second time: one stuck thread at most, whatever the number of callers.
    """

    def __init__(self, compute: Callable[[], T], name: str) -> None:
        self._compute = compute
        self._name = name
        self._lock = threading.Lock()
        self._pending: concurrent.futures.Future[T] | None = None

    @property
    def running(self) -> bool:
        """True while a run has not finished (a caller that must not block can look elsewhere)."""
        pending = self._pending
        return pending is not None and not pending.done()

    def result(self, timeout: float) -> T:
        """``compute()``'s value; ``TimeoutError`` after ``timeout`` seconds, or what ``compute`` raised."""
        with self._lock:
            pending = self._pending
            if pending is None or pending.done():
                pending = self._pending = concurrent.futures.Future()
                threading.Thread(target=self._run, args=(pending,), name=self._name, daemon=True).start()
        return pending.result(timeout=timeout)

    def _run(self, pending: concurrent.futures.Future[T]) -> None:
        try:
            pending.set_result(self._compute())
        except BaseException as exc:
            pending.set_exception(exc)


#: The fraction at the end of a value's time-to-live in which ``TTLCache.peek`` refreshes it ahead.
REFRESH_AHEAD = 0.25


class TTLCache(Generic[T]):
    """Holds one value for ``ttl`` seconds of ``clock``; concurrent callers share one refresh.

    ``get(wait=False)`` never blocks on a refresh once a value exists: it returns the
    stale value and refreshes in a background thread (stale-while-revalidate), so a slow
    probe (an fsync) does not land on a health request's latency. ``peek()`` takes no lock.
    """

    def __init__(self, compute: Callable[[], T], ttl: float, clock: Callable[[], float]) -> None:
        self._compute = compute
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._held: tuple[T, float] | None = None  # (value, expires at): replaced whole, so read without the lock
        self._refreshing = False

    def get(self, *, wait: bool = True) -> T:
        with self._lock:
            held, now = self._held, self._clock()
            if held is None or (now >= held[1] and wait):
                value = self._compute()
                self._held = (value, now + self._ttl)
                return value
            refresh = now >= held[1] and self._claim_refresh()
        if refresh:
            in_new_thread(self._refresh)  # never under the lock: see _claim_refresh
        return held[0]

    def peek(self, *, grace: float = 0.0, spawn: Spawn = in_new_thread) -> T | Missing:
        """The value held, or ``MISSING``; never computes and never waits for a lock.

        ``MISSING`` when nothing is held, or the value expired more than ``grace`` seconds ago
        (``math.inf``: any age). A value in the last ``REFRESH_AHEAD`` of its time-to-live, or
        expired but within ``grace``, is returned and starts a background refresh, as
        ``get(wait=False)`` does: ``spawn`` runs it (a caller on an event loop passes its worker
        pool rather than wait for a thread to start). So a poller that comes back within the
        time-to-live plus ``grace`` never waits for the probe itself.
        """
        held = self._held
        if held is None:
            return MISSING
        now = self._clock()
        if now < held[1] - self._ttl * REFRESH_AHEAD:
            return held[0]
        if now >= held[1] + grace:
            return MISSING
        if not self._refreshing and self._lock.acquire(blocking=False):
            try:
                refresh = self._claim_refresh()
            finally:
                self._lock.release()
            if refresh:
                spawn(self._refresh)
        return held[0]

    def _claim_refresh(self) -> bool:
        """Under the lock: True for the one caller that starts the refresh. It starts it after
        releasing the lock: a thread's start may run host code we record, which must never wait
        for a lock of ours held by the thread that waits for it to start."""
        if self._refreshing:
            return False
        self._refreshing = True
        return True

    def _refresh(self) -> None:
        try:
            value = self._compute()
        except Exception:  # keep serving the last value; the next synchronous get() raises it
            with self._lock:
                self._refreshing = False
            return
        with self._lock:
            self._held = (value, self._clock() + self._ttl)
            self._refreshing = False

    def invalidate(self) -> None:
        self._held = None


Signature = tuple[object, ...]


def content_signature(path: str | os.PathLike[str]) -> Signature:
    """What ``stat`` says of ``path`` that any write, replace, move or chmod changes; the errno if it fails.

    Device, inode, type and mode, owner, size, and modification and change times in ns.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        return ("error", exc.errno)
    return (st.st_dev, st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class FileKeyedCache(Generic[T]):
    """Holds a value computed from files for as long as ``stat`` shows the files it depends on unchanged.

    ``files`` are the paths ``compute`` reads; ``depends(value)`` says which of them (by index)
    a computed value actually depends on, so a check ``stat``s only those (default: all).
    ``compute`` may be expensive (read, parse, verify); a check is a few ``stat`` calls. The
    files are ``stat``ed *before* computing, so a file that changes during the computation is
    computed again on the next call. ``max_age`` bounds how long a value is trusted all the same,
    for an in-place rewrite that keeps size and both times within one timestamp tick.
    Concurrent callers of :meth:`get` share one computation; :meth:`peek` takes no lock.
    """

    def __init__(
        self,
        compute: Callable[[], T],
        files: Sequence[str | os.PathLike[str]],
        clock: Callable[[], float],
        max_age: float,
        depends: Callable[[T], Sequence[int]] | None = None,
    ) -> None:
        self._compute = compute
        self._files = tuple(files)
        self._clock = clock
        self._max_age = max_age
        self._depends = depends or (lambda _value: range(len(self._files)))
        self._lock = threading.Lock()
        # (signature of every file before computing, computed at, value, indices it depends on): replaced whole
        self._held: tuple[tuple[Signature, ...], float, T, Sequence[int]] | None = None

    def _current(self) -> T | Missing:
        held = self._held
        if held is None or self._clock() - held[1] >= self._max_age:
            return MISSING
        signatures = held[0]
        for index in held[3]:
            if content_signature(self._files[index]) != signatures[index]:
                return MISSING
        return held[2]

    def get(self) -> T:
        """The value for the files as they are now, computed if they changed since it was held."""
        with self._lock:
            value = self._current()
            if not isinstance(value, Missing):
                return value
            signatures = tuple(content_signature(path) for path in self._files)
            started = self._clock()
            computed = self._compute()
            self._held = (signatures, started, computed, tuple(self._depends(computed)))
            return computed

    def peek(self) -> T | Missing:
        """The value if the files it depends on are unchanged since it was computed, else ``MISSING``.

        Never computes and never waits.
        """
        return self._current()
