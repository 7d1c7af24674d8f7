"""What every ramp of the pipeline and scale benchmarks reports, checked once for both smoke tests."""

from __future__ import annotations

from typing import Any


def checked_steps(ramps: dict[str, Any], names: tuple[str, ...]) -> list[dict[str, Any]]:
    """The steps of the ramps ``names`` in ``ramps``: each ramp ran a step, every step passed or not and made spans."""
    steps = []
    for name in names:
        ramp = ramps[name]["steps"]
        assert ramp, name
        for step in ramp:
            assert isinstance(step["passed"], bool)
            assert step["spans_created"] > 0
        steps += ramp
    return steps
