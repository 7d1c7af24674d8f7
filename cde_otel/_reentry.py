"""The re-entry guard: nothing cde-otel does while it records may be recorded again.

Instrumented methods can be anything (``CDE_OTEL_TARGETS=json:JSONEncoder.encode``), and
recording calls code too: rendering a log line, bridging a record, scrubbing an exception.
While that code runs, :data:`GUARD` ``.active`` is true in this thread and the wrapper calls
an instrumented method straight through — no span, no line, no second round of recording::

    from cde_otel._reentry import GUARD

    if GUARD.active:                  # the wrapper's first check
        return wrapped(*args, **kwargs)
    GUARD.active = True
    try:
        ...                           # record
    finally:
        GUARD.active = False

A thread-local attribute (not a ContextVar): recording never awaits, and reading a
``threading.local`` attribute is the cheapest check Python has. cde-otel's own background
threads (the operation-line flusher) set it once for their whole life. The SDK's export
threads are covered by OpenTelemetry's ``suppress_instrumentation`` context, which the
wrapper honours too.

Pure standard library: the lowest layer, importable by every other.
"""

from __future__ import annotations

import threading


class _Guard(threading.local):
    active = False  # the class attribute is each thread's default


#: ``GUARD.active`` is true while cde-otel records in this thread.
GUARD = _Guard()
