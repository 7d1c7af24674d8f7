"""The health server's bounded worker pool: a fixed set of daemon threads running jobs from one queue.

Daemon threads, so that a stuck probe never blocks the host's exit.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable


class Workers:
    """``count`` threads taking jobs in order; each job handles its own errors."""

    def __init__(self, count: int) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"cde-otel-health-{index}", daemon=True) for index in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()

    def stop(self, timeout: float) -> None:
        """Lets the jobs already queued run (a probe refresh must report back), then ends the threads."""
        for _ in self._threads:
            self._jobs.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
