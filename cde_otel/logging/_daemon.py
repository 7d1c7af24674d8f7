"""One daemon thread of ours doing a piece of background work for the logging layer.

Both background jobs of this package - writing the operation lines (:mod:`._operations`) and
bridging the host's deferred records (:mod:`._deferred`) - need the same life around their
work, kept here once::

    loop = DaemonLoop("cde-otel-operation-lines", self.flush, interval_s=1.0, site="logging.operation_lines")
    loop.ensure_running()   # on first use, not at import or configure() time
    loop.wake()             # run the step now rather than at the next interval
    loop.stop()             # after the owner did its last work itself: the thread ends

* The thread starts on first use, from an empty OpenTelemetry context (a caller's span must not
  follow it: thread-context propagation would carry it), with :data:`~cde_otel._reentry.GUARD`
  set for its whole life and instrumentation suppressed, so nothing it calls is recorded again.
* ``step`` runs every ``interval_s`` and whenever :meth:`DaemonLoop.wake` is called; a step that
  wants to wait for more (:meth:`DaemonLoop.sleep`) is woken the same way. A failing step is
  swallowed and counted under ``site``: the thread outlives it, or the work would only pile up.
* In a forked child no thread of the parent's runs: every loop forgets its thread (it starts a
  new one on demand) and calls its owner's ``after_fork``, which drops the work that was the
  parent's. One ``os.register_at_fork`` for all loops, as it cannot be undone per loop.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable

from opentelemetry import context as otel_context
from opentelemetry.instrumentation.utils import suppress_instrumentation

from cde_otel._reentry import GUARD
from cde_otel._swallowed import swallowed

_log = logging.getLogger("cde_otel.logging")


class DaemonLoop:
    """Runs ``step`` in a daemon thread named ``name``, every ``interval_s`` and on :meth:`wake`."""

    def __init__(
        self,
        name: str,
        step: Callable[[], None],
        *,
        interval_s: float,
        site: str,
        after_fork: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self._step = step
        self._owner_after_fork = after_fork
        self._interval_s = interval_s
        self._site = site
        self._wake = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = False
        _LOOPS.add(self)

    @property
    def running(self) -> bool:
        return self._thread is not None

    def ensure_running(self) -> None:
        """Starts the thread unless it runs or the loop was stopped. Cheap when it runs."""
        if self._running_or_stopped():
            return
        with self._start_lock:
            if self._running_or_stopped():  # another caller started it meanwhile
                return
            thread = self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        # Started outside the lock: Thread.start() waits for the new thread's first signal, which may
        # itself be a recorded operation (a Condition.notify target) whose recording needs this loop.
        token = otel_context.attach(otel_context.Context())
        try:
            thread.start()
        finally:
            otel_context.detach(token)

    def _running_or_stopped(self) -> bool:
        return self._thread is not None or self._stopped

    def wake(self) -> None:
        self._wake.set()

    def sleep(self, timeout_s: float) -> bool:
        """In ``step``: waits up to ``timeout_s``; True when woken (by :meth:`wake` or :meth:`stop`)."""
        woken = self._wake.wait(timeout_s)
        if woken:
            self._wake.clear()
        return woken

    def stop(self, join_s: float = 1.0) -> None:
        """Ends the thread (after its current step) and waits up to ``join_s`` for it. Idempotent."""
        self._stopped = True
        thread, self._thread = self._thread, None
        self._wake.set()
        if thread is not None and thread.ident is not None and thread is not threading.current_thread():
            thread.join(join_s)

    def _run(self) -> None:
        GUARD.active = True
        with suppress_instrumentation():
            while True:
                self.sleep(self._interval_s)
                if self._stopped:
                    return  # the owner did its last work itself before stop()
                try:
                    self._step()
                except Exception:
                    swallowed(self._site, _log, "cde-otel: background work of %s failed", self.name)

    def _after_fork(self) -> None:
        self._wake = threading.Event()
        self._start_lock = threading.Lock()
        self._thread = None
        if self._owner_after_fork is not None:
            try:
                self._owner_after_fork()
            except Exception:
                swallowed(self._site, _log, "cde-otel: resetting %s after a fork failed", self.name)


_LOOPS: weakref.WeakSet[DaemonLoop] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for loop in list(_LOOPS):
        loop._after_fork()


os.register_at_fork(after_in_child=_reset_after_fork)
