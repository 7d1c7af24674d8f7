"""Side-by-side timing: variants run interleaved in rounds, ratios are medians of per-round ratios.

Each round runs every variant once (``iterations`` calls, timed with ``perf_counter_ns`` as a
whole, gc disabled), in an order that rotates from round to round (ABC, BCA, CAB, ...) so a
drift of the machine (frequency, a neighbour process) hits every variant alike. The ratio
of two variants is taken inside each round, then the median over rounds: machine noise that
lasts longer than one round cancels instead of landing on one side.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

Loop = Callable[[int], object]  # runs the operation n times


@dataclass
class Interleaved:
    """ns per operation of every variant in every round."""

    per_round: dict[str, list[float]] = field(default_factory=dict)

    def median_ns(self, name: str) -> float:
        return statistics.median(self.per_round[name])

    def ratio(self, numerator: str, denominator: str) -> float:
        """Median over rounds of ``numerator / denominator`` measured in the same round."""
        pairs = zip(self.per_round[numerator], self.per_round[denominator], strict=True)
        return statistics.median(a / b for a, b in pairs)

    def ratio_spread(self, numerator: str, denominator: str) -> tuple[float, float]:
        """The interquartile range of the per-round ratios (how much the rounds disagreed)."""
        ratios = sorted(a / b for a, b in zip(self.per_round[numerator], self.per_round[denominator], strict=True))
        if len(ratios) < 4:
            return ratios[0], ratios[-1]
        q1, _, q3 = statistics.quantiles(ratios, n=4)
        return q1, q3


def time_loop(loop: Loop, iterations: int) -> float:
    """ns per operation of one timed run of ``loop`` (gc off while it runs)."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        loop(iterations)
        elapsed = time.perf_counter_ns() - start
    finally:
        gc.enable()
    return elapsed / iterations


def interleave(variants: Mapping[str, Loop], *, rounds: int, iterations: int, warmup: int = 2_000) -> Interleaved:
    """Times every variant ``rounds`` times, interleaved, ``iterations`` operations per run."""
    names = list(variants)
    for name in names:  # warm-up: caches, lazily created instruments, first log handler writes
        variants[name](warmup)
    result = Interleaved({name: [] for name in names})
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            result.per_round[name].append(time_loop(variants[name], iterations))
    return result
