"""Telling the host something once: through its logging when it listens, else one line on stderr.

cde-otel's loggers carry a ``NullHandler`` (a library must not print through Python's last-resort
handler before the host configured logging), so a warning nobody listens to would vanish. What the
host must hear — a bad ``CDE_OTEL_TARGETS`` entry, telemetry that could not be sent at exit — goes
to its handlers when a record at that level reaches one, else as one ``cde-otel: ...`` line on stderr.
"""

from __future__ import annotations

import logging
import sys


def warn_host(logger: logging.Logger, message: str) -> None:
    """One warning: to the host's logging when it has a handler for it, else one line on stderr."""
    if has_handler(logger, logging.WARNING):
        logger.warning("cde-otel: %s", message)
        return
    try:
        sys.stderr.write(f"cde-otel: {message}\n")
        sys.stderr.flush()
    except Exception:  # stderr closed: nothing polite left to do
        return


def has_handler(logger: logging.Logger, level: int) -> bool:
    """Whether a record at ``level`` would reach a real handler (our own NullHandler does not count)."""
    if not logger.isEnabledFor(level):
        return False
    current: logging.Logger | None = logger
    while current is not None:
        if any(not isinstance(h, logging.NullHandler) and level >= h.level for h in current.handlers):
            return True
        current = current.parent if current.propagate else None
    return False
