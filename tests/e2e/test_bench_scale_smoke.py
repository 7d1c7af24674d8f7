"""Smoke test of ``bench/run.py``'s scale part (agent → one / two gateways, real binaries): the documented keys.

No timing is asserted (the figures live in docs/benchmarks.md); this only proves the benchmark
runs end to end and reports what it promises.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

NUMBER = (int, float)


def test_scale_benchmark_reports_its_keys(run_bench: Callable[..., dict[str, Any]]) -> None:
    keys = [
        "scale_spans_per_s_zero_drop_1_gateway",
        "scale_spans_per_s_zero_drop_2_gateways",
        "scale_agent_cpu_us_per_span",
        "scale_gateway_cpu_us_per_span",
    ]
    result = run_bench("scale", keys)
    for key in keys:
        assert isinstance(result[key], NUMBER), key
    for tier in ("one_gateway", "two_gateways"):
        steps = result["scale"][tier]["steps"]
        assert steps, tier
        for step in steps:
            assert isinstance(step["passed"], bool)
            assert step["spans_created"] > 0
            assert set(step["cpu_us_per_span"]) == {"agent", "gateways", "jaeger_per_kept_span"}
