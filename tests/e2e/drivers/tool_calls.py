"""One MCP tool call of the scale-out workload: a root operation with CDE work nested in it.

Plain application code, instrumented from outside by
``CDE_OTEL_TARGETS=tool_calls:ToolCall.handle,tool_calls:SlowStep.wait,tool_calls:MeasuredStep.run``.
Three kinds of call, each one trace:

* ``ok``: a measured step, a feature started and advanced one phase;
* ``error``: the same, but the agent asks to skip a phase: the core raises E102 (a real CDE
  error, status ERROR on the ``Feature.advance_phase`` span), which the call returns as its
  result, as an MCP server returns a tool error;
* ``slow``: the same as ``ok`` with a step that really takes ``SLOW_STEP_S`` (longer than the
  1 s ops alert threshold).

``MeasuredStep.run`` records exactly the duration it is given: the driver swaps the
instrumentation wrapper's clock for ``controlled.ControlledClock`` and arms it before each call.
"""

from __future__ import annotations

import time

from controlled import ControlledClock

from cde_otel.core import Project
from cde_otel.errors import CDEError

SLOW_STEP_S = 1.2


class SlowStep:
    def wait(self, seconds: float) -> None:
        time.sleep(seconds)


class MeasuredStep:
    def run(self, duration: float) -> float:
        return duration


class ToolCall:
    def __init__(self, project: Project, clock: ControlledClock) -> None:
        self.project = project
        self.clock = clock
        self.step = MeasuredStep()
        self.slow_step = SlowStep()

    def handle(self, kind: str, measured: float) -> str | None:
        """Runs one call; returns the CDE error code it answered with, if any."""
        self.clock.pending = measured  # the next operation records exactly this duration
        self.step.run(measured)
        feature = self.project.start_feature(f"scale-out {kind} call")
        if kind == "slow":
            self.slow_step.wait(SLOW_STEP_S)
        try:
            feature.advance_phase("design" if kind == "error" else "decompose", {"kind": kind})
        except CDEError as error:  # E102: phases go one at a time
            return error.code
        return None
