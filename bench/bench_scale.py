"""Benchmark of the scale-out tier: apps → agent → N gateways (tail sampling) → Jaeger, on loopback.

    .venv/bin/python bench/bench_scale.py [--quick]

The stack is ``tests/e2e/scale_backends.py`` with the config files' defaults (gateways keep 10 %
of ordinary traces), run once with one gateway and once with two. The load is the pipeline
benchmark's: ``_pipeline_worker.py rate`` children turned on with ``CDE_OTEL_ENABLED=true`` and
``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at the agent, each operation one single-span trace,
with cde-otel's defaults (no operation lines: the span is the record; the tier, not the apps,
is what is measured; see docs/benchmarks.md for the apps' own ceiling).

``scale_spans_per_s_zero_drop_{1,2}_gateway(s)``: an open-loop ramp of the offered rate, split over
two worker processes. A step passes when the workers kept the schedule (≥ 97 %), the final
flush drained in ≤ 1 s, the SDK dropped nothing, and the tier's own counters account for every
span: the agent accepted exactly the spans created and its ``load_balancing/traces`` exporter
sent them all (no failed or refused span), the gateways accepted them all, decided every trace
(no trace evicted undecided), and exported every kept span to Jaeger (waited for, with a
deadline). The key is the highest passing rate in spans delivered per second.

``scale_{agent,gateway}_cpu_us_per_span``: CPU time (user + system, ``psutil``) the agent and the
gateways (summed) used during the best passing step with two gateways (the step and the wait for
its decisions), per span created; Jaeger's CPU per kept span is reported beside it. This includes
the collectors' fixed cost per second (timers, self-metrics); ``marginal_cpu_us_per_span`` (per
extra span between the lowest and the highest passing step) leaves it out. On a shared machine CPU
time depends much less on what else runs than throughput does.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import psutil

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e"))

from _cli import print_measurement  # noqa: E402
from bench_pipeline import run_rate_workers, worker_env, worker_shortfalls  # noqa: E402
from scale_backends import ScaleOutBackends  # noqa: E402

LB = "load_balancing/traces"
JAEGER = "otlp_grpc/jaeger"


def _cpu_s(pids: dict[str, list[int]]) -> dict[str, float]:
    used = {}
    for tier, members in pids.items():
        total = 0.0
        for pid in members:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        used[tier] = total
    return used


def _counters(b: ScaleOutBackends) -> dict[str, float]:
    agent = b.collector_metrics_url
    gateways = [b.gateway_metrics_url(i) for i in range(len(b.gateway_ids))]
    decisions = "otelcol_processor_tail_sampling_global_count_traces_sampled"

    def over_gateways(name: str, **labels: str) -> float:
        return sum(b.metric_sum(url, name, **labels) for url in gateways)

    return {
        "agent_accepted": b.metric_sum(agent, "otelcol_receiver_accepted_spans"),
        "agent_refused": b.metric_sum(agent, "otelcol_receiver_refused_spans")
        + b.metric_sum(agent, "otelcol_receiver_failed_spans"),
        "agent_sent": b.metric_sum(agent, "otelcol_exporter_sent_spans", exporter=LB),
        "agent_failed": b.metric_sum(agent, "otelcol_exporter_send_failed_spans", exporter=LB)
        + b.metric_sum(agent, "otelcol_exporter_enqueue_failed_spans", exporter=LB),
        "gateway_accepted": over_gateways("otelcol_receiver_accepted_spans"),
        "gateway_refused": over_gateways("otelcol_receiver_refused_spans"),
        "decided": over_gateways(decisions),
        "kept": over_gateways(decisions, sampled="true"),
        "dropped_too_early": over_gateways("otelcol_processor_tail_sampling_sampling_trace_dropped_too_early"),
        "sent_to_jaeger": over_gateways("otelcol_exporter_sent_spans", exporter=JAEGER),
        "jaeger_failed": over_gateways("otelcol_exporter_send_failed_spans", exporter=JAEGER),
    }


def _delta(after: dict[str, float], before: dict[str, float]) -> dict[str, int]:
    return {key: int(after[key] - before.get(key, 0.0)) for key in after}


def _run_step(b: ScaleOutBackends, rate: float, seconds: float, workers: int, env: dict[str, str]) -> dict[str, Any]:
    pids = {tier: found for tier, found in b.process_ids().items() if tier != "prometheus"}
    before, cpu_before = _counters(b), _cpu_s(pids)
    results = run_rate_workers(rate, seconds, workers, env)
    created = sum(r["ops"] for r in results)  # one span, one trace per operation
    deadline = time.monotonic() + 30  # decisions come ~2 s after a trace's root arrives
    while True:
        delta = _delta(_counters(b), before)
        done = delta["decided"] >= created and delta["sent_to_jaeger"] >= delta["kept"]
        if done or time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    cpu = {tier: round(used - cpu_before[tier], 3) for tier, used in _cpu_s(pids).items()}
    achieved = sum(r["achieved_rate"] for r in results)
    flush_s = max(r["flush_s"] for r in results)
    sdk_dropped = sum(r["sdk_dropped"]["spans"] for r in results)
    reasons = worker_shortfalls(rate, achieved, flush_s, sdk_dropped)
    expected = {"agent_accepted": created, "agent_sent": created, "gateway_accepted": created, "decided": created}
    reasons += [f"{key} {delta[key]} != {value}" for key, value in expected.items() if delta[key] != value]
    for key in ("agent_refused", "agent_failed", "gateway_refused", "dropped_too_early", "jaeger_failed"):
        if delta[key]:
            reasons.append(f"{key} {delta[key]}")
    if delta["sent_to_jaeger"] != delta["kept"]:
        reasons.append(f"sent {delta['sent_to_jaeger']} of {delta['kept']} kept spans to Jaeger")
    return {
        "offered_rate": rate,
        "achieved_rate": round(achieved, 1),
        "spans_created": created,
        "tier": delta,
        "kept_share": round(delta["kept"] / created, 4) if created else None,
        "sdk_dropped_spans": sdk_dropped,
        "flush_s": round(flush_s, 3),
        "worker_cpu_s": round(sum(r["cpu_s"] for r in results), 2),
        "cpu_s": cpu,
        "cpu_us_per_span": {
            "agent": round(cpu["agent"] / created * 1e6, 2),
            "gateways": round(cpu["gateways"] / created * 1e6, 2),
            "jaeger_per_kept_span": round(cpu["jaeger"] / delta["kept"] * 1e6, 2) if delta["kept"] else None,
        },
        "passed": not reasons,
        "reasons": reasons,
    }


def measure_tier(gateways: int, *, rates: list[float], seconds: float, workers: int = 2) -> dict[str, Any]:
    """Ramps the offered rate through a tier with ``gateways`` gateways; stops at the first failing step."""
    b = ScaleOutBackends(gateways=gateways)  # its __enter__ is typed as the base class's
    with b:
        env = worker_env(b.otlp_http_endpoint)
        steps, best = [], None
        for rate in rates:
            step = _run_step(b, rate, seconds, workers, env)
            steps.append(step)
            if not step["passed"]:
                break
            if best is None or step["spans_created"] >= best["spans_created"]:
                best = step
    passed = [step for step in steps if step["passed"]]
    return {
        "gateways": gateways,
        "spans_per_s_zero_drop": round(best["spans_created"] / seconds, 1) if best else 0.0,
        "best_step": best,
        "marginal_cpu_us_per_span": _marginal(passed[0], passed[-1]) if len(passed) >= 2 else None,
        "workers": workers,
        "step_seconds": seconds,
        "steps": steps,
    }


def _marginal(low: dict[str, Any], high: dict[str, Any]) -> dict[str, float]:
    """CPU per extra span between two passing steps: without the collectors' fixed cost per second."""
    spans = high["spans_created"] - low["spans_created"]
    return {tier: round((high["cpu_s"][tier] - low["cpu_s"][tier]) / spans * 1e6, 2) for tier in ("agent", "gateways")}


def measure_scale(*, quick: bool = False) -> dict[str, Any]:
    if quick:
        # The smoke run checks the keys, not the capacity: a rate a loaded 2-core machine still carries.
        rates, seconds = [250.0], 2.0
    else:
        rates, seconds = [1000.0, 2000.0, 3000.0, 4000.0, 6000.0, 8000.0, 10000.0, 12000.0, 14000.0], 5.0
    load = {"at_start": [round(v, 2) for v in psutil.getloadavg()]}
    one = measure_tier(1, rates=rates, seconds=seconds)
    two = measure_tier(2, rates=rates, seconds=seconds)
    load["at_end"] = [round(v, 2) for v in psutil.getloadavg()]
    per_span = (two["best_step"] or {}).get("cpu_us_per_span", {})
    return {
        "scale_spans_per_s_zero_drop_1_gateway": one["spans_per_s_zero_drop"],
        "scale_spans_per_s_zero_drop_2_gateways": two["spans_per_s_zero_drop"],
        "scale_agent_cpu_us_per_span": per_span.get("agent"),
        "scale_gateway_cpu_us_per_span": per_span.get("gateways"),
        "scale": {"one_gateway": one, "two_gateways": two, "load_average": load},
    }


def main(argv: list[str] | None = None) -> int:
    print_measurement(measure_scale, __doc__, argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
