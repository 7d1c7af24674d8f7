"""Failures inside cde-otel's own wrappers and hooks: swallowed, logged at debug, and counted.

A wrapper around the host's code must never raise into it, so whatever goes wrong while
recording (a broken exporter, an unexpected argument shape, a bug of ours) is swallowed. It
is not hidden: each one is logged at DEBUG on the caller's logger with its traceback, and
counted per place, so an operator can see that telemetry is incomplete::

    from cde_otel._swallowed import swallowed

    try:
        record(...)
    except Exception:
        swallowed("wrapper.end", _log, "ending telemetry for %s failed", spec)

The counts are exported as the counter ``cde.instrumentation.failures`` (attribute
``cde.instrumentation.site``) by the instrumentors, and readable with :func:`swallowed_counts`.
The sites are a fixed set of names in the code, never values, so the attribute stays bounded.

Pure standard library: the lowest layer, importable by every other.
"""

from __future__ import annotations

import logging
import threading

_lock = threading.Lock()
_counts: dict[str, int] = {}


def swallowed(site: str, logger: logging.Logger, message: str, *args: object) -> None:
    """Counts one swallowed failure at ``site`` and logs ``message`` with the current traceback at DEBUG."""
    with _lock:
        _counts[site] = _counts.get(site, 0) + 1
    try:
        logger.debug(message, *args, exc_info=True)
    except Exception:  # a host logging set-up that fails must not turn this into a raise
        return


def swallowed_counts() -> dict[str, int]:
    """Failures swallowed so far in this process, by site."""
    with _lock:
        return dict(_counts)
