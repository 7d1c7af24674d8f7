"""Log file handlers (PROD-02.5): the standard library's rotating handlers, with retention.

* ``daily``: ``TimedRotatingFileHandler(when="midnight", utc=True, backupCount=retention)`` rolls
  over at UTC midnight into ``<file>.YYYY-MM-DD`` and deletes all but the newest ``retention``
  rolled files, i.e. the last ``retention`` days that had logs.
* ``size``: ``RotatingFileHandler(maxBytes, backupCount=retention)`` rolls over into ``<file>.1``,
  ``<file>.2``... and keeps ``retention`` of them.
* ``none``: a plain ``FileHandler`` (rotate externally, e.g. logrotate).
"""

from __future__ import annotations

import errno
import logging
import logging.handlers
import os
from pathlib import Path

from cde_otel._exceptions import CDESystemError
from cde_otel.settings import LogRotation


def file_handler(
    path: str | os.PathLike[str], rotation: LogRotation, max_bytes: int, retention: int
) -> logging.FileHandler:
    """A UTF-8, append-mode handler for ``path`` (parent directories created) rotating as asked."""
    target = Path(path).expanduser()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # delay=True opens on the first record; the daily handler then dates a fresh file by the clock, not by
        # an mtime it just created. Check writability now so that a bad path fails here, with a coded error.
        if not os.access(target if target.exists() else target.parent, os.W_OK):
            raise PermissionError(errno.EACCES, "permission denied", str(target))
        if rotation == "daily":
            return logging.handlers.TimedRotatingFileHandler(
                target, when="midnight", utc=True, backupCount=retention, encoding="utf-8", delay=True
            )
        if rotation == "size":
            return logging.handlers.RotatingFileHandler(
                target, maxBytes=max_bytes, backupCount=retention, encoding="utf-8", delay=True
            )
        if rotation == "none":
            return logging.FileHandler(target, encoding="utf-8", delay=True)
    except OSError as exc:
        raise CDESystemError(
            f"cannot open log file {str(target)!r}: {exc.strerror or exc}",
            "E903",
            {"setting": "CDE_OTEL_LOG_FILE", "value": str(target), "errno": exc.errno},
        ) from exc
    raise CDESystemError(
        f"unknown log rotation {rotation!r}",
        "E903",
        {"setting": "CDE_OTEL_LOG_ROTATION", "value": rotation, "expected": "daily|size|none"},
    )
