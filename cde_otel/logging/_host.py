"""Telling the host something once: through its logging when it shows it, else one line on stderr.

cde-otel's loggers carry a ``NullHandler`` (a library must not print through Python's last-resort
handler before the host configured logging), so a message nobody listens to would vanish. What the
host must hear — the start-up line, a bad ``CDE_OTEL_TARGETS`` entry, telemetry that could not be
sent at exit — goes to its handlers when a record at that level reaches one that shows it, else as
one ``cde-otel: ...`` line on stderr. Never on stdout: an MCP server's protocol owns it.
"""

from __future__ import annotations

import logging
import sys


def tell_host(
    logger: logging.Logger, message: str, level: int = logging.WARNING, *, host_listens: bool | None = None
) -> None:
    """One ``cde-otel: <message>`` at ``level``: to the host's logging when a record at that level
    would reach one of its handlers (``host_listens``, when decided earlier), else one stderr line."""
    if has_handler(logger, level) if host_listens is None else host_listens:
        logger.log(level, "cde-otel: %s", message)
        return
    try:
        sys.stderr.write(f"cde-otel: {message}\n")
        sys.stderr.flush()
    except Exception:  # stderr closed: nothing polite left to do
        return


def has_handler(logger: logging.Logger, level: int) -> bool:
    """Whether a record at ``level`` would reach a handler that shows it: neither a NullHandler (ours)
    nor an OpenTelemetry one (``opentelemetry-instrument``'s), which only ships records."""
    if not logger.isEnabledFor(level):
        return False
    current: logging.Logger | None = logger
    while current is not None:
        if any(_shows(h) and level >= h.level for h in current.handlers):
            return True
        current = current.parent if current.propagate else None
    return False


def _shows(handler: logging.Handler) -> bool:
    return not isinstance(handler, logging.NullHandler) and not type(handler).__module__.startswith("opentelemetry.")
