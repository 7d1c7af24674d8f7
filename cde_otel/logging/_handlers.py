"""Log file handlers (PROD-02.5): rotation that stays correct with several writer processes.

``CDE_OTEL_ENABLED`` turns telemetry on in *every* Python process, so one log file often has
several writers (workers, subprocesses, the CLI next to a server). The standard library's
rotating handlers each rename the file on their own and then keep writing into the renamed one,
losing or duplicating lines; these are ``concurrent-log-handler``'s, which take an exclusive lock
(``fcntl.flock`` via portalocker) around each write and each rollover, and share the next
rollover time through that lock file:

* ``daily``: ``ConcurrentTimedRotatingFileHandler(when="midnight", utc=True, backupCount=retention)``
  rolls over at UTC midnight into ``<file>.YYYY-MM-DD`` and deletes all but the newest
  ``retention`` rolled files, i.e. the last ``retention`` days that had logs.
* ``size``: ``ConcurrentRotatingFileHandler(maxBytes, backupCount=retention)`` rolls over into
  ``<file>.1``, ``<file>.2``... and keeps ``retention`` of them. It rolls over once the file has
  reached ``max_bytes``, so a rolled file may exceed it by its last line.
* ``none``: ``WatchedFileHandler``: never rotates, and reopens the file when an external tool
  (logrotate) moved it. Each line is one ``write()`` in append mode, so lines from several
  processes never interleave.

The lock file lives next to the log file, as a hidden ``.__<name>.lock`` (``cde.log`` →
``.__cde.lock``): it is created where the user asked for logs, never elsewhere in a workspace.
"""

from __future__ import annotations

import errno
import logging
import logging.handlers
import os
from pathlib import Path

from cde_otel._exceptions import CDESystemError
from cde_otel.settings import LogRotation


def lock_file_for(path: str | os.PathLike[str]) -> Path:
    """Where the rotating handlers keep their inter-process lock for the log file ``path``."""
    target = Path(path).expanduser()
    stem = target.name[: -len(".log")] if target.name.endswith(".log") else target.name
    return target.with_name(f".__{stem}.lock")


def file_handler(
    path: str | os.PathLike[str], rotation: LogRotation, max_bytes: int, retention: int
) -> logging.FileHandler:
    """A UTF-8, append-mode handler for ``path`` (parent directories created) rotating as asked."""
    target = Path(path).expanduser()
    if rotation not in ("daily", "size", "none"):
        raise CDESystemError(
            f"unknown log rotation {rotation!r}",
            "E903",
            {"setting": "CDE_OTEL_LOG_ROTATION", "value": rotation, "expected": "daily|size|none"},
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Check writability now so that a bad path fails here, with a coded error, not on the first record.
        if not os.access(target if target.exists() else target.parent, os.W_OK):
            raise PermissionError(errno.EACCES, "permission denied", str(target))
        if rotation != "none":
            # Imported when used: ~60 modules that every host would otherwise carry (and its GC walk).
            from concurrent_log_handler import ConcurrentRotatingFileHandler, ConcurrentTimedRotatingFileHandler
        if rotation == "daily":
            return ConcurrentTimedRotatingFileHandler(
                str(target), when="midnight", utc=True, backupCount=retention, encoding="utf-8"
            )
        if rotation == "size":
            return ConcurrentRotatingFileHandler(
                str(target), maxBytes=max_bytes, backupCount=retention, encoding="utf-8"
            )
        return logging.handlers.WatchedFileHandler(target, encoding="utf-8", delay=True)
    except OSError as exc:
        raise CDESystemError(
            f"cannot open log file {str(target)!r}: {exc.strerror or exc}",
            "E903",
            {"setting": "CDE_OTEL_LOG_FILE", "value": str(target), "errno": exc.errno},
        ) from exc
