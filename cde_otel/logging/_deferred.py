"""The host's records bridged off its thread: what a log call costs the host is a snapshot.

Turning a stdlib record into an OpenTelemetry one (attributes, redaction, the SDK's record and
its processors) costs several times what the host's own handlers do. Where the records are
batched before export anyway - ``configure()``'s own pipeline, a ``BatchLogRecordProcessor`` -
that work need not run while the host's request waits: :class:`DeferredRecords` takes a snapshot
in the caller's thread (the message rendered with its arguments, as the stdlib's ``QueueHandler``
does, and the OpenTelemetry context, so the trace and span ids are the caller's) and bridges it
from one daemon thread, in order. The thread looks every :data:`INTERVAL_S` and bridges once the
host has logged nothing for :data:`QUIET_S` - between its requests, not during one, where it would
hold the interpreter lock the request waits for - but never later than :data:`MAX_DELAY_S`, and at
once when :data:`BATCH` are waiting.

Nothing is dropped: when :data:`MAX_QUEUED` are waiting, the caller bridges its record itself.
:meth:`DeferredRecords.drain` (``force_flush()``) and :meth:`~DeferredRecords.close`
(``shutdown()``) bridge what is waiting before the providers flush. A record with an exception or
a stack is bridged at once, while its frames are what they were.
The thread's life (start, wake, fork, stop) is :class:`~cde_otel.logging._daemon.DaemonLoop`'s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from opentelemetry import context as otel_context

from cde_otel._swallowed import swallowed
from cde_otel.logging._daemon import DaemonLoop

INTERVAL_S = 0.5
QUIET_S = 0.05  # a host that logged nothing for this long is between requests
MAX_DELAY_S = 2.0  # a host that never pauses: its records are bridged this late at most
BATCH = 256  # waiting records that wake the thread early
MAX_QUEUED = 8192  # beyond this the caller bridges its own record: bounded memory, nothing lost

_log = logging.getLogger("cde_otel.logging")
SITE = "logging.deferred"
Snapshot = tuple[logging.LogRecord, str, otel_context.Context]


class DeferredRecords:
    """Records waiting to be bridged by ``bridge_now`` (which translates and emits one record, given
    its message as rendered when it was logged)."""

    def __init__(self, bridge_now: Callable[[logging.LogRecord, str], None]) -> None:
        self._bridge_now = bridge_now
        self._queue: deque[Snapshot] = deque()
        self._drain_lock = threading.Lock()  # one drainer at a time: records keep their order
        self._closed = False
        self._last_added = 0.0  # time.monotonic() of the last record queued
        self._loop = DaemonLoop(
            "cde-otel-log-records",
            self._bridge_after_a_pause,
            interval_s=INTERVAL_S,
            site=SITE,
            after_fork=self._after_fork,
        )

    def add(self, record: logging.LogRecord) -> bool:
        """Queues ``record``; False when the caller must bridge it now (closed, full, or not deferrable)."""
        if self._closed or record.exc_info or record.stack_info or len(self._queue) >= MAX_QUEUED:
            return False
        try:
            message = record.getMessage()  # now: the arguments may change after the call returns
        except Exception:
            return False  # a bad format: bridged (and its failure handled) on the caller's thread, as before
        self._queue.append((record, message, otel_context.get_current()))
        self._last_added = time.monotonic()
        if not self._loop.running:
            self._loop.ensure_running()
        elif len(self._queue) >= BATCH:
            self._loop.wake()
        return True

    def _bridge_after_a_pause(self) -> None:
        self._wait_for_a_pause()
        self.drain()

    def _wait_for_a_pause(self) -> None:
        """Returns once the host paused logging (:data:`QUIET_S`), by :data:`MAX_DELAY_S`, or when a
        batch is waiting or the records are closed."""
        latest = time.monotonic() + MAX_DELAY_S
        while self._queue and not self._closed and len(self._queue) < BATCH:
            now = time.monotonic()
            quiet_for = now - self._last_added
            if quiet_for >= QUIET_S or now >= latest:
                return
            self._loop.sleep(min(QUIET_S - quiet_for, latest - now))

    def drain(self, timeout_s: float | None = None) -> bool:
        """Bridges every waiting record (by ``timeout_s``, if given); True when none is left. Never raises."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        if not self._drain_lock.acquire(timeout=-1 if timeout_s is None else timeout_s):
            return not self._queue
        try:
            while self._queue:
                if deadline is not None and time.monotonic() > deadline:
                    return False
                record, message, ctx = self._queue.popleft()
                self._bridge_snapshot(record, message, ctx)
            return True
        finally:
            self._drain_lock.release()

    def _bridge_snapshot(self, record: logging.LogRecord, message: str, ctx: otel_context.Context) -> None:
        token = otel_context.attach(ctx)  # the caller's trace and span ids, and its correlation id
        try:
            self._bridge_now(record, message)  # the host's record object stays as it was
        except Exception:
            swallowed(SITE, _log, "cde-otel: a deferred record was not bridged (%s)", record.name)
        finally:
            otel_context.detach(token)

    def close(self, timeout_s: float = 5.0) -> None:
        """Stops deferring, bridges what waits and stops the thread. Idempotent; never raises."""
        self._closed = True
        self._loop.wake()  # a thread waiting for a pause stops waiting
        self.drain(timeout_s)
        self._loop.stop()

    def _after_fork(self) -> None:
        """In a forked child: the parent's records are the parent's (the thread restarts on demand)."""
        self._queue = deque()
        self._drain_lock = threading.Lock()
