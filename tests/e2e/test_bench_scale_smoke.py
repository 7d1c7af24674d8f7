"""Smoke test of ``bench/run.py``'s scale part (agent → one / two gateways, real binaries): the documented keys.

No timing is asserted (the figures live in docs/benchmarks.md); this only proves the benchmark
runs end to end and reports what it promises.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench_ramp import checked_steps


def test_scale_benchmark_reports_its_keys(run_bench: Callable[..., dict[str, Any]]) -> None:
    keys = [
        "scale_spans_per_s_zero_drop_1_gateway",
        "scale_spans_per_s_zero_drop_2_gateways",
        "scale_agent_cpu_us_per_span",
        "scale_gateway_cpu_us_per_span",
    ]
    result = run_bench("scale", keys)  # every key's value a number
    for step in checked_steps(result["scale"], ("one_gateway", "two_gateways")):
        assert set(step["cpu_us_per_span"]) == {"agent", "gateways", "jaeger_per_kept_span"}
