"""A user-target class whose recorded durations the end-to-end test knows exactly.

The driver swaps the instrumentation wrapper's clock for :class:`ControlledClock`, which
returns ``t`` at an operation's start and ``t + duration`` at its end for the one call that
was armed: the histogram then holds exactly the durations the test chose.
"""

from __future__ import annotations

import time


class ControlledClock:
    def __init__(self) -> None:
        self.pending: float | None = None
        self._start: float | None = None

    def perf_counter(self) -> float:
        if self.pending is None:
            return time.perf_counter()
        if self._start is None:
            self._start = 1000.0
            return self._start
        value = self._start + self.pending
        self.pending = self._start = None
        return value

    @staticmethod
    def thread_time() -> float:
        return time.thread_time()


class ControlledOperation:
    def run(self, duration: float) -> float:
        return duration
