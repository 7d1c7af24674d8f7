"""Crash-safe file primitives: atomic replace with fsync, write probes, errno classification.

Every byte the repository writes goes through :func:`write_all`, which is also the
one seam fault injection patches (``cde_otel.testing.simulate_storage_error``).
:func:`state_error` turns an ``OSError`` into the coded ``StateError`` callers see.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cde_otel._exceptions import StateError

#: errnos after which writing cannot succeed until an operator acts (read-only mode).
STORAGE_UNAVAILABLE_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT})
#: errnos worth retrying: the same write may succeed in a moment.
TRANSIENT_ERRNOS = frozenset({errno.EAGAIN, errno.EBUSY, errno.EINTR, errno.ETIMEDOUT})
#: Names of :data:`TRANSIENT_ERRNOS` as they appear in a ``StateError``'s ``context["errno"]``.
TRANSIENT_ERRNO_NAMES = frozenset(errno.errorcode[n] for n in TRANSIENT_ERRNOS)


def is_storage_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in STORAGE_UNAVAILABLE_ERRNOS


def state_error(exc: OSError, *, path: Path, operation: str) -> StateError:
    """E210 when the storage refuses writes (:data:`STORAGE_UNAVAILABLE_ERRNOS`), else E201."""
    context: dict[str, Any] = {
        "path": str(path),
        "operation": operation,
        "errno": errno.errorcode.get(exc.errno or 0, str(exc.errno)),
        "reason": exc.strerror or str(exc),
    }
    if exc.errno in STORAGE_UNAVAILABLE_ERRNOS:
        return StateError(f"storage refused {operation} of {path}: {exc.strerror}", "E210", context)
    return StateError(f"{operation} of {path} failed: {exc.strerror or exc}", "E201", context)


def write_all(fd: int, data: bytes) -> None:
    """Writes every byte of ``data`` to ``fd`` (``os.write`` may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fsync_dir(directory: Path) -> None:
    """Makes a rename inside ``directory`` durable (POSIX needs the directory synced too)."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_name(target: Path, kind: str = "") -> Path:
    # The ``.*.tmp`` shape is what remove_stale_temp_files sweeps after a crash.
    return target.with_name(f".{kind}{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def atomic_write(target: Path, data: bytes) -> None:
    """Writes ``data`` to ``target`` so a crash at any instant leaves the old or the new file.

    temp file in the same directory -> write -> fsync -> rename over -> fsync directory.
    """
    tmp = _temp_name(target)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        write_all(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.close(fd)
    try:
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(target.parent)


def probe_write(directory: Path, size: int = 4096) -> None:
    """Proves ``directory`` accepts a durable write of ``size`` bytes, leaving nothing behind.

    Raises the ``OSError`` of the failing step (ENOSPC, EROFS, EACCES...).
    """
    tmp = _temp_name(directory / "write-probe", kind="probe-")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        write_all(fd, b"\0" * max(1, size))
        os.fsync(fd)
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()


def move_aside(path: Path, label: str) -> Path:
    """Renames ``path`` to ``<name>.<label>-<UTC timestamp>`` in the same directory (kept, never deleted)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    kept = path.with_name(f"{path.name}.{label}-{stamp}")
    os.replace(path, kept)
    fsync_dir(path.parent)
    return kept


def keep_aside(path: Path, label: str) -> Path | None:
    """Keeps the current ``path`` as ``<name>.<label>-<UTC timestamp>`` while ``path`` itself stays in place.

    A regular file gets a second name (a hard link: no data is written, so it works on a full
    disk); the caller then replaces ``path`` atomically, and until that succeeds readers still
    find the original. Anything else (a directory in the way) is renamed, as :func:`move_aside`.
    None when no copy could be kept.
    """
    if not path.is_file():
        return move_aside(path, label) if path.exists() else None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    kept = path.with_name(f"{path.name}.{label}-{stamp}")
    try:
        os.link(path, kept)
    except OSError:
        return None  # no hard links here: replacing without a copy beats leaving no state at all
    with contextlib.suppress(OSError):
        fsync_dir(path.parent)
    return kept


def remove_stale_temp_files(directory: Path) -> None:
    """Deletes temp files left by writers that crashed before their rename."""
    for leftover in directory.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            leftover.unlink()
