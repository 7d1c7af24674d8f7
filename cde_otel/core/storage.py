"""Crash-safe file primitives: atomic replace with fsync, and errno classification."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path

#: errnos after which writing cannot succeed until an operator acts (read-only mode).
STORAGE_UNAVAILABLE_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT})
#: errnos worth retrying: the same write may succeed in a moment.
TRANSIENT_ERRNOS = frozenset({errno.EAGAIN, errno.EBUSY, errno.EINTR, errno.ETIMEDOUT})


def fsync_dir(directory: Path) -> None:
    """Makes a rename inside ``directory`` durable (POSIX needs the directory synced too)."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(target: Path, data: bytes) -> None:
    """Writes ``data`` to ``target`` so a crash at any instant leaves the old or the new file.

    temp file in the same directory -> write -> fsync -> rename over -> fsync directory.
    """
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
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


def remove_stale_temp_files(directory: Path) -> None:
    """Deletes temp files left by writers that crashed before their rename."""
    for leftover in directory.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            leftover.unlink()
