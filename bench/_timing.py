"""Side-by-side timing: variants run interleaved in rounds, ratios are medians of per-round ratios.

Each round runs every variant once (``iterations`` calls, timed as a whole with
``perf_counter_ns``, gc disabled), in a fresh (seeded) random order, so a drift of the
machine (frequency, a neighbour process) hits every variant alike and no variant always
follows the same neighbour. A ``settle`` hook runs before every timed run, outside the
timing: e.g. flushing the batch processors, so that background work one variant queued
is not billed to the next one. The ratio of two variants is taken inside each round, then the median over rounds:
noise that lasts longer than one round cancels instead of landing on one side. Short runs
and many rounds keep the two sides of a ratio milliseconds apart.

The thread's CPU time (``thread_time_ns``) is recorded beside the wall clock: on a shared
machine, time spent preempted by other processes inflates the wall clock at random, and the
CPU-time ratio shows whether a wall-clock ratio moved because of that.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

Loop = Callable[[int], object]  # runs the operation n times


@dataclass
class Interleaved:
    """ns per operation of every variant in every round (wall clock and thread CPU time)."""

    per_round: dict[str, list[float]] = field(default_factory=dict)
    cpu_per_round: dict[str, list[float]] = field(default_factory=dict)

    def median_ns(self, name: str, *, cpu: bool = False) -> float:
        return statistics.median((self.cpu_per_round if cpu else self.per_round)[name])

    def ratios(self, numerator: str, denominator: str, *, cpu: bool = False) -> list[float]:
        table = self.cpu_per_round if cpu else self.per_round
        return [a / b for a, b in zip(table[numerator], table[denominator], strict=True)]

    def ratio(self, numerator: str, denominator: str, *, cpu: bool = False) -> float:
        """Median over rounds of ``numerator / denominator`` measured in the same round."""
        return statistics.median(self.ratios(numerator, denominator, cpu=cpu))

    def ratio_spread(self, numerator: str, denominator: str) -> tuple[float, float]:
        """The interquartile range of the per-round wall-clock ratios (how much the rounds disagreed)."""
        ratios = sorted(self.ratios(numerator, denominator))
        if len(ratios) < 4:
            return ratios[0], ratios[-1]
        q1, _, q3 = statistics.quantiles(ratios, n=4)
        return q1, q3

    def ratio_of_minimums(self, numerator: str, denominator: str) -> float:
        """min/min over rounds: the least-disturbed run of each side (preemption only ever adds time)."""
        return min(self.per_round[numerator]) / min(self.per_round[denominator])


def time_loop(loop: Loop, iterations: int, cpu_clock: Callable[[], int] = time.thread_time_ns) -> tuple[float, float]:
    """(wall ns, CPU ns) per operation of one timed run of ``loop``, gc off while it runs.

    ``cpu_clock``: the calling thread's CPU time by default; ``time.process_time_ns`` counts every
    thread (a loop that ends with a flush then bills the exporters' work to the operation).
    """
    gc.disable()
    try:
        cpu_start = cpu_clock()
        start = time.perf_counter_ns()
        loop(iterations)
        elapsed = time.perf_counter_ns() - start
        cpu_elapsed = cpu_clock() - cpu_start
    finally:
        gc.enable()
    return elapsed / iterations, cpu_elapsed / iterations


def interleave(
    variants: Mapping[str, Loop],
    *,
    rounds: int,
    iterations: int,
    warmup: int = 2_000,
    settle: Callable[[], object] | None = None,
    seed: int = 20_260_101,
    cpu_clock: Callable[[], int] = time.thread_time_ns,
) -> Interleaved:
    """Times every variant ``rounds`` times, interleaved, ``iterations`` operations per run."""
    names = list(variants)
    for name in names:  # warm-up: caches, lazily created instruments, first log handler writes
        variants[name](warmup)
    order = random.Random(seed)
    result = Interleaved({name: [] for name in names}, {name: [] for name in names})
    for _ in range(rounds):
        gc.collect()  # once per round, outside every timed run
        order.shuffle(names)
        for name in names:
            if settle is not None:
                settle()
            wall, cpu = time_loop(variants[name], iterations, cpu_clock)
            result.per_round[name].append(wall)
            result.cpu_per_round[name].append(cpu)
    return result
