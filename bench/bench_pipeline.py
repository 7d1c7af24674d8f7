"""Benchmarks against the real Collector (with Jaeger and Prometheus behind it) on loopback.

    .venv/bin/python bench/bench_pipeline.py [--quick]

Backends come from ``tests/e2e/backends.py`` (binaries from ``scripts/install-backends.sh``).
The load comes from ``_pipeline_worker.py`` children, turned on the way a user turns
cde-otel on: ``CDE_OTEL_ENABLED=true`` and ``OTEL_EXPORTER_OTLP_ENDPOINT`` (OTLP/HTTP, the
default protocol), batch span processor tuned with the standard ``OTEL_BSP_*`` variables.
Their stderr goes to ``/dev/null`` (cde-otel prints nothing there by default).

``export_spans_per_s_zero_drop`` (goal ≥ 10,000 on 2 cores): an open-loop ramp of the offered
rate, split over ``workers`` processes. A step passes when the workers kept the schedule
(achieved ≥ 97 % of the offered rate), the final flush drained in ≤ 1 s (no backlog hidden
in the queue), the SDK counted no dropped span, and the collector's own counters moved by
exactly the number of spans created: ``otelcol_receiver_accepted_spans`` == spans created,
no refused/failed spans, and ``otelcol_exporter_sent_spans{exporter="otlp_grpc/jaeger"}``
== accepted (waited for, with a deadline). The key is the highest passing rate, in spans
actually delivered per second.

``collector_down_latency_ratio`` (goal ≤ 1.10): one worker process runs phases at a fixed
rate while the benchmark stops and restarts the collector between them: up, down, up,
down... (after a restart, the next "up" phase starts once the collector has accepted
spans again). Per operation latency is measured around the call; the ratio is the median
over pairs of p99(down) / p99(up). Then a long phase with the collector down: RSS sampled
every 100 ms; growth must level off (bounded queues), reported as the peak growth and the
growth over the second half.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from _cli import print_measurement

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
WORKER = BENCH_DIR / "_pipeline_worker.py"
JAEGER_EXPORTER = "otlp_grpc/jaeger"

# The BSP tuning a user would set for a high span rate (standard variables).
BSP_TUNING = {
    "OTEL_BSP_MAX_QUEUE_SIZE": "8192",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "2048",
    "OTEL_BSP_SCHEDULE_DELAY": "200",
}


def _backends_module() -> Any:
    sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e"))
    import backends

    return backends


def worker_env(endpoint: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CDE_OTEL_"))}
    env.update(
        {
            "CDE_OTEL_ENABLED": "true",
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_SERVICE_NAME": "cde-otel-bench",
            **BSP_TUNING,
            **(extra or {}),
        }
    )
    return env


# -- the collector's own counters ------------------------------------------------------------
def _parse_labels(text: str) -> dict[str, str]:
    labels = {}
    for part in text.split('",'):
        key, _, value = part.partition('="')
        if key:
            labels[key.strip().strip(",")] = value.rstrip('"')
    return labels


def collector_counters(url: str) -> dict[str, float]:
    """Span counters from the collector's Prometheus endpoint, summed over label sets.

    Keys are metric names without ``_total``; exporter counters are per exporter
    (``otelcol_exporter_sent_spans/otlp_grpc/jaeger``).
    """
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    counters: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or "_spans" not in line:
            continue
        series, _, value = line.rpartition(" ")
        name, _, label_text = series.partition("{")
        name = name.removesuffix("_total")
        if name.startswith("otelcol_exporter_"):
            name = f"{name}/{_parse_labels(label_text.rstrip('}')).get('exporter', '?')}"
        counters[name] = counters.get(name, 0.0) + float(value)
    return counters


def _delta(after: dict[str, float], before: dict[str, float], name: str) -> int:
    return int(after.get(name, 0.0) - before.get(name, 0.0))


def _wait_for_collector(url: str, before: dict[str, float], expected: int, timeout: float) -> dict[str, float]:
    """Polls until the collector accepted ``expected`` spans and sent them all to Jaeger (or the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        after = collector_counters(url)
        accepted = _delta(after, before, "otelcol_receiver_accepted_spans")
        sent = _delta(after, before, f"otelcol_exporter_sent_spans/{JAEGER_EXPORTER}")
        if (accepted >= expected and sent >= accepted) or time.monotonic() >= deadline:
            return after
        time.sleep(0.25)


# -- throughput ---------------------------------------------------------------------------------
def run_rate_workers(rate: float, seconds: float, workers: int, env: dict[str, str]) -> list[dict[str, Any]]:
    """``workers`` ``_pipeline_worker.py rate`` children sharing the offered ``rate`` for ``seconds``; their results."""
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), "rate", str(rate / workers), str(seconds)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(workers)
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=seconds * 4 + 60)
        if proc.returncode != 0:
            raise RuntimeError(f"pipeline worker failed with {proc.returncode}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def worker_shortfalls(rate: float, achieved: float, flush_s: float, sdk_dropped: int) -> list[str]:
    """Why a step fails on the workers' side: schedule not kept, a backlog at the final flush, spans dropped."""
    reasons = []
    if achieved < 0.97 * rate:
        reasons.append(f"workers reached {achieved:.0f}/s of {rate:.0f}/s")
    if flush_s > 1.0:
        reasons.append(f"final flush took {flush_s:.1f} s (backlog)")
    if sdk_dropped:
        reasons.append(f"SDK dropped {sdk_dropped} spans")
    return reasons


def _backend_cpu_s(backends: Any) -> dict[str, float]:
    """CPU seconds used so far by each backend process (to show what share of the cores they take)."""
    import psutil

    used = {}
    for name in ("collector", "jaeger"):
        popen = getattr(getattr(backends, f"_{name}", None), "popen", None)
        if popen is not None and popen.poll() is None:
            times = psutil.Process(popen.pid).cpu_times()
            used[name] = times.user + times.system
    return used


def _run_step(backends: Any, rate: float, seconds: float, workers: int, env: dict[str, str]) -> dict[str, Any]:
    before = collector_counters(backends.collector_metrics_url)
    cpu_before = _backend_cpu_s(backends)
    results = run_rate_workers(rate, seconds, workers, env)
    created = sum(r["ops"] for r in results)
    after = _wait_for_collector(backends.collector_metrics_url, before, created, timeout=20)
    cpu_after = _backend_cpu_s(backends)
    accepted = _delta(after, before, "otelcol_receiver_accepted_spans")
    sent = _delta(after, before, f"otelcol_exporter_sent_spans/{JAEGER_EXPORTER}")
    refused = _delta(after, before, "otelcol_receiver_refused_spans") + _delta(
        after, before, "otelcol_receiver_failed_spans"
    )
    send_failed = _delta(after, before, f"otelcol_exporter_send_failed_spans/{JAEGER_EXPORTER}")
    sdk_dropped = sum(r["sdk_dropped"]["spans"] for r in results)
    achieved = sum(r["achieved_rate"] for r in results)
    flush_s = max(r["flush_s"] for r in results)
    reasons = worker_shortfalls(rate, achieved, flush_s, sdk_dropped)
    if accepted != created:
        reasons.append(f"collector accepted {accepted} of {created} spans")
    if refused or send_failed:
        reasons.append(f"collector refused/failed {refused}, export to Jaeger failed {send_failed}")
    if sent != accepted:
        reasons.append(f"collector sent {sent} of {accepted} spans to Jaeger")
    return {
        "offered_rate": rate,
        "achieved_rate": round(achieved, 1),
        "spans_created": created,
        "collector_accepted": accepted,
        "sent_to_jaeger": sent,
        "sdk_dropped_spans": sdk_dropped,
        "sdk_dropped_logs": sum(r["sdk_dropped"]["logs"] for r in results),
        "flush_s": round(flush_s, 3),
        "max_lag_s": round(max(r["max_lag_s"] for r in results), 3),
        "worker_cpu_s": round(sum(r["cpu_s"] for r in results), 2),
        "backend_cpu_s": {name: round(cpu_after[name] - cpu_before.get(name, 0.0), 2) for name in cpu_after},
        "passed": not reasons,
        "reasons": reasons,
    }


def measure_export_throughput(
    backends: Any,
    *,
    rates: list[float],
    seconds: float,
    workers: int = 2,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Ramps the offered rate; stops at the first failing step. The key is the best passing rate."""
    env = worker_env(backends.otlp_http_endpoint, extra_env)
    steps = []
    best = 0.0
    for rate in rates:
        step = _run_step(backends, rate, seconds, workers, env)
        steps.append(step)
        if not step["passed"]:
            break
        best = max(best, step["spans_created"] / seconds)
    return {
        "spans_per_s_zero_drop": round(best, 1),
        "workers": workers,
        "step_seconds": seconds,
        "env": {**BSP_TUNING, **(extra_env or {})},
        "steps": steps,
    }


def measure_export_throughput_side_by_side(
    backends: Any, *, rates: list[float], seconds: float, workers: int = 2
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same ramp for our defaults and the plain-SDK floor, step by step alternately; each stops at its
    first failing step (so the two see the same machine, minute by minute)."""
    endpoint = backends.otlp_http_endpoint
    variants = {"default": worker_env(endpoint), "floor": worker_env(endpoint, FLOOR_ENV)}
    steps: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    best = dict.fromkeys(variants, 0.0)
    running = set(variants)
    for rate in rates:
        for name in [n for n in variants if n in running]:
            step = _run_step(backends, rate, seconds, workers, variants[name])
            steps[name].append(step)
            if step["passed"]:
                best[name] = max(best[name], step["spans_created"] / seconds)
            else:
                running.discard(name)
        if not running:
            break
    results = tuple(
        {"spans_per_s_zero_drop": round(best[name], 1), "workers": workers, "step_seconds": seconds,
         "env": {**BSP_TUNING, **(FLOOR_ENV if name == "floor" else {})}, "steps": steps[name]}
        for name in variants
    )  # fmt: skip
    return results[0], results[1]


FINE_STEP = 0.05  # the fine ramp's steps: each offered rate 5 % above the previous one


def _last_passing_rate(steps: list[dict[str, Any]]) -> float:
    passed = [step["offered_rate"] for step in steps if step["passed"]]
    return max(passed) if passed else 0.0


def measure_zero_drop_ratio_vs_floor(
    backends: Any, *, rates: list[float], seconds: float, workers: int = 2
) -> dict[str, Any]:
    """``export_zero_drop_ratio_vs_floor``: our zero-drop export rate over the plain-SDK floor's, in one run.

    A coarse ramp (``rates``, both variants alternately, see ``measure_export_throughput_side_by_side``)
    finds where each stops; then from each one's last passing coarse rate a fine ramp in steps of 5 %
    (alternating again, each variant stopping at its first failure) up to its first failing coarse rate.
    So each best rate is known to within 5 %, and the two were measured on the same machine minute by
    minute. The load average before and after is reported with it: absolute rates depend on the machine.
    """
    load_before = [round(x, 2) for x in os.getloadavg()]
    default, floor = measure_export_throughput_side_by_side(backends, rates=rates, seconds=seconds, workers=workers)
    coarse = {"default": default, "floor": floor}
    endpoint = backends.otlp_http_endpoint
    envs = {"default": worker_env(endpoint), "floor": worker_env(endpoint, FLOOR_ENV)}
    rate = {name: _last_passing_rate(result["steps"]) for name, result in coarse.items()}
    ceiling = {
        name: next((s["offered_rate"] for s in result["steps"] if not s["passed"]), rates[-1] * (1 + FINE_STEP))
        for name, result in coarse.items()
    }
    best = {name: result["spans_per_s_zero_drop"] for name, result in coarse.items()}
    # A variant that passed every step is capped by the ramp, not by the machine: its rate is a lower bound.
    capped = sorted(name for name, result in coarse.items() if all(step["passed"] for step in result["steps"]))
    fine: dict[str, list[dict[str, Any]]] = {name: [] for name in coarse}
    running = {name for name in coarse if rate[name] > 0}
    while running:
        for name in sorted(running):
            rate[name] *= 1 + FINE_STEP
            if rate[name] >= ceiling[name]:
                running.discard(name)
                continue
            step = _run_step(backends, rate[name], seconds, workers, envs[name])
            fine[name].append(step)
            if step["passed"]:
                best[name] = max(best[name], step["spans_created"] / seconds)
            else:
                running.discard(name)
    ratio = best["default"] / best["floor"] if best["floor"] else 0.0
    return {
        "export_zero_drop_ratio_vs_floor": round(ratio, 3),
        "zero_drop": {
            "default_spans_per_s": round(best["default"], 1),
            "floor_spans_per_s": round(best["floor"], 1),
            "fine_step": FINE_STEP,
            "capped_by_ramp": capped,
            "load_average_before": load_before,
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "fine_steps": fine,
        },
        "coarse": coarse,
    }


# -- collector outage ---------------------------------------------------------------------------
class _PhaseWorker:
    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), "phases"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def run(self, rate: float, seconds: float) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"run {rate} {seconds}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"phase worker exited with {self.proc.wait()}")
        result: dict[str, Any] = json.loads(line)
        return result

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _restart_collector(backends: Any, worker: _PhaseWorker, rate: float) -> float:
    """Starts the collector and runs the load until it accepts spans again; returns the seconds that took."""
    started = time.monotonic()
    backends.start_collector()
    before = collector_counters(backends.collector_metrics_url)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        worker.run(rate, 0.5)
        if _delta(collector_counters(backends.collector_metrics_url), before, "otelcol_receiver_accepted_spans") > 0:
            break
    return time.monotonic() - started


def measure_collector_down(
    backends: Any, *, rate: float, phase_seconds: float, pairs: int, long_down_seconds: float
) -> dict[str, Any]:
    worker = _PhaseWorker(worker_env(backends.otlp_http_endpoint))
    try:
        worker.run(rate, min(2.0, phase_seconds))  # warm-up, discarded
        phases: list[dict[str, Any]] = []
        recoveries = []
        for _ in range(pairs):
            up = worker.run(rate, phase_seconds)
            backends.stop_collector()
            down = worker.run(rate, phase_seconds)
            recoveries.append(_restart_collector(backends, worker, rate))
            phases.append({"up": up, "down": down})
        backends.stop_collector()
        long_down = worker.run(rate, long_down_seconds)
        backends.start_collector()
    finally:
        worker.close()
    ratios = [p["down"]["p99_us"] / p["up"]["p99_us"] for p in phases]
    rss = long_down["rss_mb"]
    half = len(rss) // 2
    return {
        "collector_down_latency_ratio": round(statistics.median(ratios), 4),
        "collector_down": {
            "rate": rate,
            "phase_seconds": phase_seconds,
            "pair_ratios": [round(r, 4) for r in ratios],
            "p99_us": {
                "up": [round(p["up"]["p99_us"], 1) for p in phases],
                "down": [round(p["down"]["p99_us"], 1) for p in phases],
            },
            "p50_us": {
                "up": [round(p["up"]["p50_us"], 1) for p in phases],
                "down": [round(p["down"]["p50_us"], 1) for p in phases],
            },
            "achieved_rate_down": [round(p["down"]["achieved_rate"], 1) for p in phases],
            "sdk_dropped_total": long_down["sdk_dropped"],
            "recovery_s": [round(r, 2) for r in recoveries],
            "long_down_seconds": long_down_seconds,
            "long_down_ops": long_down["ops"],
            "long_down_p99_us": round(long_down["p99_us"], 1),
            "rss_start_mb": rss[0],
            "rss_peak_mb": max(rss),
            "rss_end_mb": rss[-1],
            "rss_peak_growth_mb": round(max(rss) - rss[0], 2),
            "rss_growth_second_half_mb": round(max(rss[half:]) - max(rss[:half]), 2),
            "rss_mb_every_s": rss[::10],
        },
    }


# The plain-SDK floor: the same operation, span and histogram, OTLP/HTTP, no cde-otel (see the worker).
FLOOR_ENV = {"CDE_PIPELINE_FLOOR": "1", "CDE_OTEL_ENABLED": "false"}
RATES = [1000.0, 1500.0, 2000.0, 2500.0, 3000.0, 4000.0, 5000.0, 6000.0, 8000.0, 10000.0, 12000.0, 14000.0]


def measure_pipeline(*, quick: bool = False) -> dict[str, Any]:
    backends_module = _backends_module()
    with backends_module.Backends() as backends:
        if quick:
            ratio = measure_zero_drop_ratio_vs_floor(backends, rates=[500.0, 1000.0], seconds=2.0)
            outage = measure_collector_down(backends, rate=300.0, phase_seconds=1.5, pairs=1, long_down_seconds=2.0)
        else:
            # The floor first and ours second would bias by warm-up; alternate per step instead.
            ratio = measure_zero_drop_ratio_vs_floor(backends, rates=RATES, seconds=5.0)
            outage = measure_collector_down(backends, rate=1000.0, phase_seconds=4.0, pairs=3, long_down_seconds=60.0)
        default, floor = ratio["coarse"]["default"], ratio["coarse"]["floor"]
        return {
            "export_spans_per_s_zero_drop": ratio["zero_drop"]["default_spans_per_s"],
            "export_spans_per_s_zero_drop_floor": ratio["zero_drop"]["floor_spans_per_s"],
            "export_zero_drop_ratio_vs_floor": ratio["export_zero_drop_ratio_vs_floor"],
            "zero_drop": ratio["zero_drop"],
            "export": {"default_logging": default, "plain_sdk_floor": floor},
            **outage,
            "backends_startup_s": round(backends.startup_seconds or 0.0, 2),
        }


def main(argv: list[str] | None = None) -> int:
    print_measurement(measure_pipeline, __doc__, argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
