"""Whole lines appended to ``<dir>/<signal>.jsonl`` within a size cap, rotated, safe across processes.

The layout and the rules are :mod:`._local_files`'s (the embedded default's files).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_log = logging.getLogger("cde_otel.telemetry")
_SEGMENTS = 4  # the live file rolls over at this fraction of a signal's share
_LOCK_TIMEOUT_S = 5.0


def rotated_files(directory: Path, signal: str) -> list[Path]:
    """The rotated files of ``signal``, oldest first (modification time, then name)."""
    found = []
    for path in directory.glob(f"{signal}.*.jsonl"):
        try:
            found.append((path.stat().st_mtime_ns, path.name, path))
        except FileNotFoundError:  # removed by another process meanwhile
            continue
    return [path for _, _, path in sorted(found)]


class RotatingLines:
    """Appends whole lines to ``<directory>/<signal>.jsonl`` within ``max_bytes`` for the signal.

    Safe across threads and processes. The open descriptor is reused while the path still names
    the same file (another process may have rotated it away).
    """

    def __init__(self, directory: Path, signal: str, max_bytes: int) -> None:
        self.directory = directory
        self.signal = signal
        self.path = directory / f"{signal}.jsonl"
        self.max_bytes = max(1, max_bytes)
        self.segment_bytes = max(1, max_bytes // _SEGMENTS)
        self.dropped_lines = 0  # lines larger than the signal's whole share: never written
        self._file_lock = _InterProcessLock(directory / f".{signal}.lock")
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._ino = -1
        self._closed = False
        try:  # the live file exists from the start, as a user who looks expects
            self._current_fd()
        except OSError:
            _log.debug("cde-otel: creating %s failed", self.path, exc_info=True)

    def write(self, line: bytes) -> bool:
        """Writes one line (ending in a newline); False when it could not be written."""
        if len(line) > self.max_bytes:
            self.dropped_lines += 1
            return False
        with self._lock:
            if self._closed:
                return False
            try:
                with self._file_lock.held():
                    fd = self._current_fd()
                    size = _whole_lines(fd, os.fstat(fd).st_size)
                    if size and size + len(line) > self.segment_bytes:
                        self._rotate()
                        self._prune(keep_free=max(self.segment_bytes, len(line)))
                        fd = self._current_fd()
                    _write_all(fd, line)
                    return True
            except (OSError, TimeoutError):
                _log.debug("cde-otel: writing %s failed", self.path, exc_info=True)
                return False

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._file_lock.close()

    def _current_fd(self) -> int:
        """Our descriptor of ``S.jsonl``, reopened when the path names another file (or none) now."""
        try:
            ino = os.stat(self.path).st_ino
        except FileNotFoundError:
            ino = -2
        if self._fd is None or ino != self._ino:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self.directory.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
            self._ino = os.fstat(self._fd).st_ino
        return self._fd

    def _rotate(self) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"{time.time_ns() % 1_000_000_000:09d}"
        target = self.directory / f"{self.signal}.{stamp}-{os.getpid()}.jsonl"
        os.replace(self.path, target)

    def _prune(self, keep_free: int) -> None:
        """Deletes the oldest rotated files until they and ``keep_free`` bytes fit the signal's share."""
        rotated = [(path, _size(path)) for path in rotated_files(self.directory, self.signal)]
        total = sum(size for _, size in rotated)
        for path, size in rotated:
            if total + keep_free <= self.max_bytes:
                break
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            total -= size


class _InterProcessLock:
    """An exclusive lock on ``path`` across processes: ``fcntl.flock`` on a descriptor kept open
    (two system calls per write), else ``filelock`` (Windows).

    Not ``filelock`` everywhere: it logs every acquire and release at DEBUG on the ``filelock``
    logger, which a host's DEBUG logging prints and the OTel log bridge would export, per batch.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None
        self._fallback: Any = None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            yield from self._held_by_filelock()
            return
        if self._fd is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        deadline = time.monotonic() + _LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self._path} is locked") from None
                time.sleep(0.0005)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _held_by_filelock(self) -> Iterator[None]:  # pragma: no cover - not POSIX
        from filelock import FileLock

        if self._fallback is None:
            self._fallback = FileLock(str(self._path), thread_local=False)
        with self._fallback.acquire(timeout=_LOCK_TIMEOUT_S):
            yield

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _whole_lines(fd: int, size: int) -> int:
    """The file's size once a partial last line (a write cut short: disk full) is cut off, so the
    next line starts on a line of its own and only the live file's last line can ever be partial."""
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size
    end = size
    while end > 0:
        start = max(0, end - 65_536)
        cut = os.pread(fd, end - start, start).rfind(b"\n")
        if cut >= 0:
            end = start + cut + 1
            break
        end = start
    os.ftruncate(fd, end)
    return end


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:  # pragma: no cover - a regular file either writes or raises
            raise OSError(errno.EIO, "short write")
        view = view[written:]
