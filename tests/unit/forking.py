"""Runs a check in a forked child of the test process: what a fork inherits, and what it resets."""

from __future__ import annotations

import os
from collections.abc import Callable


def in_forked_child(check: Callable[[], str]) -> tuple[int, str]:
    """Forks; the child runs ``check`` and reports its text through a pipe, then leaves at once
    (``os._exit``: none of the parent's exit handlers run twice). Returns the child's exit code
    (0 when ``check`` returned) and its report."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.write(write_end, check().encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    report = os.read(read_end, 1000).decode()
    os.close(read_end)
    return os.waitstatus_to_exitcode(status), report
