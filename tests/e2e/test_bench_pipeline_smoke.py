"""Smoke test of ``bench/run.py``'s pipeline part against the real Collector: the documented JSON keys.

No timing is asserted (speed goals live in the benchmarks themselves); the in-process part
is ``tests/unit/test_bench_smoke.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench_ramp import checked_steps

NUMBER = (int, float)


def test_pipeline_benchmarks_report_their_keys(run_bench: Callable[..., dict[str, Any]]) -> None:
    keys = [
        "export_spans_per_s_zero_drop",
        "export_spans_per_s_zero_drop_floor",
        "export_zero_drop_ratio_vs_floor",
        "collector_down_latency_ratio",
        "collector_down_rss_growth_second_half_mb",
    ]
    result = run_bench("pipeline", keys)  # every key's value a number

    for step in checked_steps(result["export"], ("default_logging", "plain_sdk_floor")):
        assert isinstance(step["collector_accepted"], int)
    zero_drop = result["zero_drop"]
    assert zero_drop["fine_step"] == 0.05 and len(zero_drop["load_average_before"]) == 3
    down = result["collector_down"]
    assert len(down["pair_ratios"]) >= 1
    assert down["long_down_ops"] > 0
    assert isinstance(down["rss_peak_growth_mb"], NUMBER)
