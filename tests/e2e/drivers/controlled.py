"""A user-target class whose recorded durations the end-to-end test knows exactly.

The driver swaps the instrumentation wrapper's clock for :class:`ControlledClock`, which
returns the real time ``t`` at an operation's start and ``t + duration`` at its end for the one
call that was armed: the span and the histogram (one interval, see the wrapper) then hold
exactly the durations the test chose.
"""

from __future__ import annotations

import time


class ControlledClock:
    def __init__(self) -> None:
        self.pending: float | None = None
        self._start_ns: int | None = None

    def time_ns(self) -> int:
        if self.pending is None:
            return time.time_ns()
        if self._start_ns is None:
            self._start_ns = time.time_ns()
            return self._start_ns
        value = self._start_ns + round(self.pending * 1e9)
        self.pending = self._start_ns = None
        return value

    @staticmethod
    def thread_time_ns() -> int:
        return time.thread_time_ns()


class ControlledOperation:
    def run(self, duration: float) -> float:
        return duration
