"""Benchmark: P50/P95/P99 error of the default duration histogram, read the way Prometheus reads it (goal ≤ 0.02).

    .venv/bin/python bench/bench_quantiles.py [--quick]

100,000 durations (fixed seed) from a mixture spanning 50 µs .. 1 s — fast in-memory calls,
millisecond disk writes, slow 50-100 ms saves, and a uniform tail up to 1 s — are recorded
into an SDK ``MeterProvider`` with an ``InMemoryMetricReader`` and the default view
(``duration_views("exponential", 750)``: base-2 exponential buckets, max 750). Quantiles
are computed from the exported point with ``cde_otel.health._percentiles`` as Prometheus
does — no clamping to the point's min/max, which Prometheus never sees — with linear
interpolation inside the bucket (Prometheus 2.x, e.g. Debian's 2.42 that the end-to-end
suite runs) and exponential interpolation (Prometheus 3.x); the goal applies to the
version in use, 2.x, i.e. ``linear``.

The yardstick shares nothing with the estimate: the exact quantiles come from the raw samples,
sorted, under the two textbook definitions (Hyndman & Fan 1996), and the error reported is the
worse of the two:

* ``nearest_rank`` (H&F type 1, the inverse of the empirical CDF): the sample of rank ``ceil(q * n)``;
* ``interpolated`` (H&F type 7, numpy's and R's default): linear between the samples of ranks
  ``floor(h)`` and ``floor(h) + 1``, ``h = (n - 1) * q`` (0-based), as tests/e2e/quantile_oracle.py.

The classic 110-boundary view (``CDE_OTEL_HISTOGRAM=classic``) is reported for context.
"""

from __future__ import annotations

import math
import random
from typing import Any

from _cli import print_measurement

from cde_otel.health._percentiles import (
    QUANTILES,
    Interpolation,
    explicit_quantile,
    exponential_quantile,
    merge_exponential,
)
from cde_otel.semconv import ATTR_OPERATION, ATTR_OUTCOME

LOWEST_S = 50e-6
HIGHEST_S = 1.0
GOAL = 0.02
PROMETHEUS_IN_USE: Interpolation = "linear"  # Debian's Prometheus 2.42 (scripts/install-backends.sh)


def latency_samples(count: int, seed: int = 42) -> list[float]:
    """A mixture of log-normals plus a uniform tail, clipped to [50 µs, 1 s]."""
    rng = random.Random(seed)
    # (weight, median s, sigma): in-memory calls, state-file writes, slow saves; then a uniform tail.
    modes = ((0.45, 150e-6, 0.5), (0.35, 3e-3, 0.6), (0.15, 60e-3, 0.4))
    samples = []
    for _ in range(count):
        pick = rng.random()
        cumulative = 0.0
        value = None
        for weight, median, sigma in modes:
            cumulative += weight
            if pick < cumulative:
                value = rng.lognormvariate(math.log(median), sigma)
                break
        if value is None:
            value = rng.uniform(0.1, HIGHEST_S)
        samples.append(min(max(value, LOWEST_S), HIGHEST_S))
    return samples


def nearest_rank_quantile(sorted_samples: list[float], q: float) -> float:
    """Hyndman & Fan type 1: the smallest sample with at least ``q`` of the samples at or below it."""
    rank = max(1, math.ceil(q * len(sorted_samples)))
    return sorted_samples[rank - 1]


def interpolated_quantile(sorted_samples: list[float], q: float) -> float:
    """Hyndman & Fan type 7 (numpy's default): linear between the two closest ranks."""
    position = q * (len(sorted_samples) - 1)
    low = math.floor(position)
    high = min(low + 1, len(sorted_samples) - 1)
    return sorted_samples[low] + (sorted_samples[high] - sorted_samples[low]) * (position - low)


EXACT_DEFINITIONS = {"nearest_rank": nearest_rank_quantile, "interpolated": interpolated_quantile}


def _recorded_point(samples: list[float], kind: str) -> Any:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from cde_otel.semconv import CLASSIC_BOUNDARIES_S
    from cde_otel.semconv import METRIC_OPERATION_DURATION as DURATION_METRIC
    from cde_otel.telemetry._histograms import duration_views
    from cde_otel.testing import metric_points

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=duration_views(kind, 750))
    histogram = provider.get_meter("bench").create_histogram(
        DURATION_METRIC, unit="s", explicit_bucket_boundaries_advisory=CLASSIC_BOUNDARIES_S
    )
    attributes = {ATTR_OPERATION: "bench", ATTR_OUTCOME: "ok"}
    for value in samples:
        histogram.record(value, attributes)
    points = metric_points(reader, DURATION_METRIC)
    provider.shutdown()
    if len(points) != 1:
        raise RuntimeError(f"expected one histogram point, got {len(points)}")
    return points[0]


def _index_span(bucket_counts: Any) -> int:
    used = [index for index, count in enumerate(bucket_counts) if count]
    return used[-1] - used[0] + 1 if used else 0


def _errors(estimates: dict[str, float], exact: dict[str, dict[str, float]]) -> dict[str, float]:
    """Per quantile, the relative error against the exact value it is furthest from (either definition)."""
    return {
        name: max(abs(estimates[name] - by_definition[name]) / by_definition[name] for by_definition in exact.values())
        for name, _ in QUANTILES
    }


def measure_quantiles(*, quick: bool = False, samples: int | None = None) -> dict[str, Any]:
    count = samples or (20_000 if quick else 100_000)
    values = latency_samples(count)
    ordered = sorted(values)
    exact = {
        definition: {name: quantile(ordered, q) for name, q in QUANTILES}
        for definition, quantile in EXACT_DEFINITIONS.items()
    }

    point = _recorded_point(values, "exponential")
    counts = merge_exponential([point])
    if counts is None:
        raise RuntimeError("no exponential histogram point was recorded")
    by_interpolation: dict[str, dict[str, Any]] = {}
    for interpolation in ("linear", "exponential"):
        estimates = {name: exponential_quantile(q, counts, interpolation) for name, q in QUANTILES}
        errors = _errors(estimates, exact)
        by_interpolation[interpolation] = {
            "estimates_s": estimates,
            "rel_errors": {k: round(v, 5) for k, v in errors.items()},
            "max_rel_error": round(max(errors.values()), 5),
        }

    classic = _recorded_point(values, "classic")
    classic_estimates = {
        name: explicit_quantile(q, classic.explicit_bounds, classic.bucket_counts) for name, q in QUANTILES
    }
    classic_errors = _errors(classic_estimates, exact)
    return {
        "quantile_max_rel_error": by_interpolation[PROMETHEUS_IN_USE]["max_rel_error"],
        "quantiles": {
            "samples": count,
            "range_s": [ordered[0], ordered[-1]],
            "exact_s": exact,
            "errors_against": "the worse of the nearest-rank and the interpolated exact quantile",
            "view": "ExponentialBucketHistogramAggregation(max_size=750)",
            "scale": point.scale,
            "buckets_non_empty": sum(1 for c in point.positive.bucket_counts if c),
            "bucket_index_span": _index_span(point.positive.bucket_counts),
            "goal_applies_to": f"{PROMETHEUS_IN_USE} interpolation (Prometheus 2.x in use)",
            "exponential_view": by_interpolation,
            "worst_of_both_interpolations": max(v["max_rel_error"] for v in by_interpolation.values()),
            "classic_view": {
                "boundaries": len(classic.explicit_bounds),
                "estimates_s": classic_estimates,
                "rel_errors": {k: round(v, 5) for k, v in classic_errors.items()},
                "max_rel_error": round(max(classic_errors.values()), 5),
            },
        },
    }


def main(argv: list[str] | None = None) -> int:
    result = print_measurement(measure_quantiles, __doc__, argv)
    return 0 if result["quantile_max_rel_error"] <= GOAL else 1


if __name__ == "__main__":
    raise SystemExit(main())
