"""An application process of the scale-out e2e: tool calls at a steady rate, phases set by the test.

    python scale_driver.py RECORDS_JSONL CONTROL_FILE SEED RATE

Telemetry is switched on by ``CDE_OTEL_ENABLED=true`` in the environment (with
``CDE_OTEL_TARGETS`` naming the classes of ``tool_calls.py``); nothing here configures it.
The driver only *observes* the SDK: a span processor added to the global tracer provider
counts the spans each trace really had, so the test can tell a whole trace from a partial one.

CONTROL_FILE holds the phase: any word is a phase label stamped on the calls made while it is
there; ``pause`` makes no calls; ``stop`` ends the process (exit code 0, after the SDK's
flush). Each call appends one JSON line to RECORDS_JSONL::

    {"i": 17, "phase": "steady", "kind": "error", "trace_id": "…32 hex…", "spans": 4,
     "error": "E102", "start": <unix s>, "end": <unix s>, "duration": <controlled s>}

The kinds follow the call index (1 in 10 an error, 1 in 200 slow); the controlled durations
are log-uniform from 1 ms to 0.9 s, seeded: the span of ``MeasuredStep.run`` lasts exactly as
long as its histogram record says (one interval), and staying under the gateway's 1 s latency
policy keeps "slow" meaning the ``slow`` kind only. The last stdout line is a summary.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from cde_otel.core import Project, ProjectStatus  # importing the core turns telemetry on


class SpanCounter(SpanProcessor):
    """Counts the spans that ended, per trace id, and remembers the last root (an observer; exports nothing)."""

    def __init__(self) -> None:
        self.spans: Counter[int] = Counter()
        self.last_root: int | None = None

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None:
            self.spans[span.context.trace_id] += 1
            if span.parent is None:
                self.last_root = span.context.trace_id


def kind_of(index: int) -> str:
    if index % 200 == 100:
        return "slow"
    return "error" if index % 10 == 5 else "ok"


def main(records_file: str, control_file: str, seed: str, rate: str) -> int:
    import tool_calls
    from controlled import ControlledClock

    from cde_otel.instrumentation import _wrapper

    counter = SpanCounter()
    trace.get_tracer_provider().add_span_processor(counter)  # type: ignore[attr-defined]
    clock = ControlledClock()
    _wrapper.time = clock  # type: ignore[attr-defined,assignment]  # exact durations for MeasuredStep.run
    project = Project(name="scale-out", path="/nonexistent/scale-out")
    project.status = ProjectStatus.ACTIVE  # set directly: no span outside a tool call
    call = tool_calls.ToolCall(project, clock)
    rng = random.Random(int(seed))
    interval = 1.0 / float(rate)
    kinds: Counter[str] = Counter()
    control = Path(control_file)
    index = 0
    next_due = time.monotonic()
    with open(records_file, "a", buffering=1) as out:
        while True:
            phase = control.read_text().strip()
            if phase == "stop":
                break
            if phase in ("", "pause"):
                time.sleep(0.02)
                next_due = time.monotonic()
                continue
            kind = kind_of(index)
            duration = math.exp(rng.uniform(math.log(1e-3), math.log(0.9)))
            start = time.time()
            code = call.handle(kind, duration)
            end = time.time()
            trace_id = counter.last_root
            assert trace_id is not None, "the tool call made no root span: is CDE_OTEL_TARGETS set?"
            record: dict[str, Any] = {
                "i": index, "phase": phase, "kind": kind, "trace_id": f"{trace_id:032x}",
                "spans": counter.spans.pop(trace_id), "error": code, "start": start, "end": end,
                "duration": duration,
            }  # fmt: skip
            out.write(json.dumps(record) + "\n")
            kinds[kind] += 1
            index += 1
            next_due = max(next_due + interval, time.monotonic())
            time.sleep(max(0.0, next_due - time.monotonic()))
    sys.stdout.write(json.dumps({"calls": index, "kinds": dict(kinds), "pid": os.getpid()}) + "\n")
    return 0


if __name__ == "__main__":
    assert os.environ.get("CDE_OTEL_ENABLED") == "true", "the driver must be instrumented by the env var alone"
    raise SystemExit(main(*sys.argv[1:]))
