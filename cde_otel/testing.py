"""Fault injection for tests: make the repository's writes fail with a chosen errno.

    with simulate_disk_full():
        project = repo.get_or_create(path)
        assert project.read_only

Patches :func:`cde_otel.core.storage.write_all`, the one function every state, backup
and probe write goes through, so nothing else in the process is affected. Not
thread-safe against concurrent patching; meant for tests.
"""

from __future__ import annotations

import errno as errno_codes
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from cde_otel.core import storage


@dataclass
class InjectedFault:
    errno: int
    times: int | None
    failures: int = 0


@contextmanager
def simulate_storage_error(error: int = errno_codes.ENOSPC, *, times: int | None = None) -> Iterator[InjectedFault]:
    """Every write (or the first ``times`` writes) raises ``OSError(error)`` while the block runs."""
    fault = InjectedFault(error, times)
    real_write_all = storage.write_all

    def failing_write_all(fd: int, data: bytes) -> None:
        if fault.times is None or fault.failures < fault.times:
            fault.failures += 1
            raise OSError(error, os.strerror(error))
        real_write_all(fd, data)

    storage.write_all = failing_write_all
    try:
        yield fault
    finally:
        storage.write_all = real_write_all


@contextmanager
def simulate_disk_full() -> Iterator[InjectedFault]:
    """Every write fails with ENOSPC while the block runs."""
    with simulate_storage_error(errno_codes.ENOSPC) as fault:
        yield fault
