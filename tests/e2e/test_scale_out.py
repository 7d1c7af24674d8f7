"""Scale-out on the real binaries: apps → agent → two gateways (tail sampling) → Jaeger (Badger) + Prometheus.

One run per module (``scale_run``) moves three real app processes (``CDE_OTEL_ENABLED=true``,
OTLP to the agent) through four phases while the stack changes under them:

    steady    both gateways up
    pause     the apps idle; the tier's own counters are compared with what the apps produced
    outage    gateway-2 is SIGKILLed while the apps keep calling; later restarted
    recovery  both gateways receive again
    stop      the apps exit (their SDKs flush)

Every tool call is one trace: ``ok``, ``error`` (a real CDE error, E102, on a nested span) or
``slow`` (a nested step that really takes 1.2 s). Each driver writes one record per call:
its trace id, kind, the spans the SDK really ended for it, and the exactly known duration its
``MeasuredStep.run`` recorded. The tests then check what each phase left behind in Jaeger,
Prometheus and the collectors' own metrics. Jaeger is restarted last (same Badger directory).

All collector settings are the defaults of the config files, except the gateways' batch timeout.
Everything is polled with deadlines; nothing sleeps and hopes.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from backends import CONFIG_DIR, poll_until
from scale_backends import GATEWAY_ID_KEY, ScaleOutBackends

DRIVERS = Path(__file__).resolve().parent / "drivers"
TARGETS = "tool_calls:ToolCall.handle,tool_calls:SlowStep.wait,tool_calls:MeasuredStep.run"
APPS = 3
RATE_PER_APP = 50.0  # tool calls per second per app
STEADY_CALLS = 600  # per app
RECOVERY_CALLS = 400  # per app, after gateway-2 receives again
# Longer than the agent's batch timeout (1 s) + retry window (5 s) + a margin: calls made in the
# middle of the outage have certainly failed before the restart.
OUTAGE_MIN_S = 14.0
FAILED_BY_S = 8.0
DEADLINE_S = 90.0
# A trace is judged by its gateway up to ~3 s after its root span ended (SDK and agent batches,
# decision_wait_after_root_received, gateway batch): what a gateway held when it was killed.
IN_FLIGHT_S = 5.0
DEFAULT_SHARE_PERCENT = 10.0  # GATEWAY_SAMPLING_PERCENTAGE's default in otel-gateway.yaml
GATEWAY_ENV = {"COLLECTOR_BATCH_TIMEOUT": "200ms"}  # the agent keeps every default
FAILED_SPANS = "otelcol_exporter_send_failed_spans"
ENQUEUE_FAILED_SPANS = "otelcol_exporter_enqueue_failed_spans"
LB_TRACES = "load_balancing/traces"


# ---- the run -----------------------------------------------------------------------------------


@dataclass
class ScaleRun:
    backends: ScaleOutBackends
    service: str
    records: list[dict[str, Any]] = field(default_factory=list)
    exit_codes: list[int] = field(default_factory=list)
    summaries: list[dict[str, Any]] = field(default_factory=list)
    stderr_tails: list[str] = field(default_factory=list)
    pause_counters: dict[str, Any] = field(default_factory=dict)
    outage: dict[str, Any] = field(default_factory=dict)
    kill_time: float = 0.0
    restart_time: float = 0.0
    recovered_time: float = 0.0

    def calls(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.records if kind is None or r["kind"] == kind]

    def clean(self) -> list[dict[str, Any]]:
        """Calls made while both gateways were up and nothing of theirs was in flight at the kill."""
        return [
            r for r in self.records if r["end"] < self.kill_time - IN_FLIGHT_S or r["start"] > self.recovered_time + 1.0
        ]


class Apps:
    """The app processes, one records file each; CONTROL holds the phase they all follow."""

    def __init__(self, backends: ScaleOutBackends, service: str, work: Path) -> None:
        self.control = work / "control"
        self.control.write_text("steady")
        self.records_files = [work / f"app-{index}.jsonl" for index in range(APPS)]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CDE_OTEL_"))}
        env.update(
            CDE_OTEL_ENABLED="true",
            CDE_OTEL_TARGETS=TARGETS,
            OTEL_SERVICE_NAME=service,
            OTEL_EXPORTER_OTLP_ENDPOINT=backends.otlp_http_endpoint,
            OTEL_METRIC_EXPORT_INTERVAL="1000",
            OTEL_BSP_SCHEDULE_DELAY="200",
            OTEL_BLRP_SCHEDULE_DELAY="200",
        )
        self.stderr_paths = [work / f"app-{index}.stderr" for index in range(APPS)]
        self.procs = []
        for index in range(APPS):
            with self.stderr_paths[index].open("w") as stderr:
                self.procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            str(DRIVERS / "scale_driver.py"),
                            str(self.records_files[index]),
                            str(self.control),
                            str(1000 + index),
                            str(RATE_PER_APP),
                        ],
                        env=env,
                        cwd=work,
                        stdout=subprocess.PIPE,
                        stderr=stderr,
                        text=True,
                    )
                )

    def set_phase(self, phase: str) -> None:
        self.control.write_text(phase)

    def records(self) -> list[list[dict[str, Any]]]:
        """Every app's records so far (a line still being written is left for the next read)."""
        out = []
        for path in self.records_files:
            rows = []
            if path.exists():
                for line in path.read_text().splitlines():
                    try:
                        rows.append(json.loads(line))
                    except ValueError:
                        break
            out.append(rows)
        return out

    def each_made(self, phase: str, count: int, *, after: float = 0.0) -> bool:
        for index, proc in enumerate(self.procs):
            if proc.poll() is not None:
                raise AssertionError(f"app {index} exited with {proc.returncode}: {self.stderr_tail(index)}")
        return all(
            sum(1 for r in rows if r["phase"] == phase and r["start"] >= after) >= count for rows in self.records()
        )

    def stderr_tail(self, index: int) -> str:
        return self.stderr_paths[index].read_text()[-3000:]

    def finish(self, timeout: float = 60.0) -> tuple[list[int], list[dict[str, Any]]]:
        self.set_phase("stop")
        codes, summaries = [], []
        for proc in self.procs:
            try:
                out, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            codes.append(proc.returncode)
            lines = out.strip().splitlines()
            summaries.append(json.loads(lines[-1]) if lines else {})
        return codes, summaries


def _tier_counters(b: ScaleOutBackends) -> dict[str, Any]:
    """The agent's span counters and each gateway's (None for a gateway that is down)."""
    agent = b.collector_metrics_url
    gateways = [b.gateway_metrics_url(i) if b.gateway_running(i) else None for i in range(len(b.gateway_ids))]
    return {
        "agent_accepted": b.metric_sum(agent, "otelcol_receiver_accepted_spans"),
        "agent_sent": b.metric_sum(agent, "otelcol_exporter_sent_spans", exporter=LB_TRACES),
        "agent_failed": b.metric_sum(agent, FAILED_SPANS, exporter=LB_TRACES)
        + b.metric_sum(agent, ENQUEUE_FAILED_SPANS, exporter=LB_TRACES),
        "gateway_accepted": [url and b.metric_sum(url, "otelcol_receiver_accepted_spans") for url in gateways],
        "gateway_decisions": [
            url and b.metric_sum(url, "otelcol_processor_tail_sampling_global_count_traces_sampled") for url in gateways
        ],
    }


@pytest.fixture(scope="module")
def scale_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScaleRun]:
    work = tmp_path_factory.mktemp("scale-out")
    backends = ScaleOutBackends(work / "backends", gateways=2, gateway_env=GATEWAY_ENV)
    backends.start()
    print(f"\n[scale-out] stack ready in {backends.startup_seconds:.1f}s (workdir {backends.workdir})")
    run = ScaleRun(backends, f"cde-scale-{uuid.uuid4().hex[:8]}")
    apps = Apps(backends, run.service, work)
    try:
        _drive(run, apps)
        yield run
    finally:
        if apps.procs and any(p.poll() is None for p in apps.procs):
            apps.finish(timeout=10)
        backends.stop()


def _drive(run: ScaleRun, apps: Apps) -> None:
    b = run.backends
    started = time.monotonic()
    marks: dict[str, float] = {}

    def mark(name: str) -> None:
        marks[name] = round(time.monotonic() - started, 1)

    poll_until(lambda: apps.each_made("steady", STEADY_CALLS), timeout=120, interval=0.2, what="the steady phase")
    mark("steady")

    # pause: everything produced so far must be accounted for by the tier's own counters
    apps.set_phase("pause")  # the apps finish the call they are in; the poll waits for the tier
    last: dict[str, Any] = {}

    def settled() -> dict[str, Any] | None:
        produced = [r for rows in apps.records() for r in rows]
        spans = sum(r["spans"] for r in produced)
        last.update(_tier_counters(b), produced_traces=len(produced), produced_spans=spans)
        done = (
            last["agent_accepted"] == spans
            and sum(last["gateway_accepted"]) == spans
            and sum(last["gateway_decisions"]) == len(produced)
        )
        return dict(last) if done else None

    try:
        run.pause_counters = poll_until(settled, timeout=DEADLINE_S, interval=0.5, what="the tier to settle")
    except TimeoutError as exc:
        raise AssertionError(f"the tier did not account for the steady phase: {last}") from exc
    mark("settled")

    # outage: gateway-2 crashes while the apps keep calling
    apps.set_phase("outage")
    resumed = time.time()
    poll_until(lambda: apps.each_made("outage", 25, after=resumed), timeout=60, interval=0.1, what="calls to resume")
    before = _tier_counters(b)
    run.kill_time = time.time()
    b.kill_gateway(1)

    def outage_reported() -> dict[str, Any] | None:
        now = _tier_counters(b)
        enough = time.time() - run.kill_time >= OUTAGE_MIN_S
        failed = now["agent_failed"] - before["agent_failed"]
        survivor = now["gateway_accepted"][0] - before["gateway_accepted"][0]
        return now if enough and failed > 0 and survivor > 0 else None

    during = poll_until(outage_reported, timeout=DEADLINE_S, interval=0.5, what="the agent to report the outage")
    mark("outage")
    outcome = b.collector_metrics(b.collector_metrics_url)
    run.restart_time = time.time()
    b.start_gateway(1)

    # recovery: gateway-2 receives again (its counters start from zero)
    apps.set_phase("recovery")
    poll_until(
        lambda: b.metric_sum(b.gateway_metrics_url(1), "otelcol_receiver_accepted_spans") > 0,
        timeout=DEADLINE_S,
        interval=0.2,
        what="gateway-2 to receive again after its restart",
    )
    run.recovered_time = time.time()
    mark("recovered")
    run.outage = {
        "before": before,
        "during": during,
        "outcome": {
            (dict(labels).get("endpoint", "?"), dict(labels).get("success", "?")): value
            for (name, labels), value in outcome.items()
            if name.removesuffix("_total") == "otelcol_loadbalancer_backend_outcome"
        },
        "reconnect_s": run.recovered_time - run.restart_time,
    }
    poll_until(
        lambda: apps.each_made("recovery", RECOVERY_CALLS, after=run.recovered_time + 1.0),
        timeout=120,
        interval=0.2,
        what="the recovery phase",
    )
    mark("recovery")
    run.exit_codes, run.summaries = apps.finish()
    mark("stopped")
    run.stderr_tails = [apps.stderr_tail(i) for i in range(APPS)]
    run.records = [dict(r, app=index) for index, rows in enumerate(apps.records()) for r in rows]
    print(f"[scale-out] {len(run.records)} calls; phases ended at {marks} s; pause counters {run.pause_counters}")
    print(f"[scale-out] outage {run.outage}")


# ---- Jaeger ----------------------------------------------------------------------------------------


def _traces(run: ScaleRun) -> dict[str, dict[str, Any]]:
    doc = run.backends.jaeger_get("/api/traces", service=run.service, limit=100_000)
    return {t["traceID"].rjust(32, "0"): t for t in doc.get("data") or []}


def _tags(span: dict[str, Any]) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in span["tags"]}


def _gateways_of(trace: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for span in trace["spans"]:
        tags = trace["processes"][span["processID"]].get("tags", [])
        found.update(str(t["value"]) for t in tags if t["key"] == GATEWAY_ID_KEY)
        if not any(t["key"] == GATEWAY_ID_KEY for t in tags):
            found.add("<none>")
    return found


def _settled_traces(run: ScaleRun) -> dict[str, dict[str, Any]]:
    """Jaeger's traces once every clean error/slow call is there whole (decisions take ~2 s)."""
    wanted = {r["trace_id"]: r["spans"] for r in run.clean() if r["kind"] != "ok"}

    def complete() -> dict[str, dict[str, Any]] | None:
        traces = _traces(run)
        whole = all(len(traces[t]["spans"]) == n for t, n in wanted.items() if t in traces)
        return traces if whole and wanted.keys() <= traces.keys() else None

    try:
        return poll_until(complete, timeout=DEADLINE_S, interval=1.0, what="every clean error/slow trace in Jaeger")
    except TimeoutError:
        traces = _traces(run)
        missing = [(t, n, len(traces.get(t, {}).get("spans", []))) for t, n in wanted.items()]
        missing = [m for m in missing if m[1] != m[2]][:10]
        raise AssertionError(f"error/slow traces missing or partial (trace, wanted, found): {missing}") from None


@pytest.fixture(scope="module")
def jaeger_traces(scale_run: ScaleRun) -> dict[str, dict[str, Any]]:
    return _settled_traces(scale_run)


# ---- the tests -------------------------------------------------------------------------------------


def test_the_default_sampling_share_is_ten_percent() -> None:
    gateway = (CONFIG_DIR / "otel-gateway.yaml").read_text()
    assert re.search(r"sampling_percentage: \$\{env:GATEWAY_SAMPLING_PERCENTAGE:-10\}", gateway)
    assert re.search(r"threshold_ms: \$\{env:GATEWAY_LATENCY_THRESHOLD_MS:-1000\}", gateway)


def test_apps_run_through_a_gateway_crash_untouched(scale_run: ScaleRun) -> None:
    assert scale_run.exit_codes == [0] * APPS, scale_run.stderr_tails
    for tail in scale_run.stderr_tails:
        assert "Traceback" not in tail, tail
    by_phase = Counter(r["phase"] for r in scale_run.records)
    assert by_phase["steady"] >= APPS * STEADY_CALLS and by_phase["recovery"] >= APPS * RECOVERY_CALLS
    during = [r for r in scale_run.records if scale_run.kill_time <= r["start"] <= scale_run.restart_time]
    assert len(during) >= APPS * RATE_PER_APP * OUTAGE_MIN_S * 0.5, "the apps must keep calling during the outage"
    # ... and their calls took no longer: exports are asynchronous and the agent kept accepting.
    steady = [r["end"] - r["start"] for r in scale_run.records if r["phase"] == "steady" and r["kind"] == "ok"]
    outage = [r["end"] - r["start"] for r in during if r["kind"] == "ok"]
    assert statistics.median(outage) <= 1.5 * statistics.median(steady) + 0.002, (
        statistics.median(outage),
        statistics.median(steady),
    )
    assert sum(s["calls"] for s in scale_run.summaries) == len(scale_run.records)
    errors = scale_run.calls("error")
    assert errors and all(r["error"] == "E102" for r in errors)
    assert all(r["error"] is None for r in scale_run.records if r["kind"] != "error")


def test_the_tier_accounts_for_every_span_and_decides_each_trace_once(scale_run: ScaleRun) -> None:
    """Through the collectors' own counters, at the pause: nothing lost, no trace split across gateways."""
    counters = scale_run.pause_counters
    spans, traces = counters["produced_spans"], counters["produced_traces"]
    assert counters["agent_accepted"] == spans
    assert counters["agent_sent"] == spans and counters["agent_failed"] == 0
    assert sum(counters["gateway_accepted"]) == spans
    # A trace split across gateways would be decided by each of them: more decisions than traces.
    assert sum(counters["gateway_decisions"]) == traces
    assert all(decided > 0.2 * traces for decided in counters["gateway_decisions"]), counters


def test_every_kept_trace_reaches_jaeger_whole_through_one_gateway(
    scale_run: ScaleRun, jaeger_traces: dict[str, dict[str, Any]]
) -> None:
    expected = {r["trace_id"]: r for r in scale_run.records}
    assert jaeger_traces, "nothing reached Jaeger"
    unknown = sorted(set(jaeger_traces) - set(expected))
    assert not unknown, f"traces no app made: {unknown[:5]}"
    for trace_id, trace in jaeger_traces.items():
        assert _gateways_of(trace) in ({"gateway-1"}, {"gateway-2"}), (trace_id, _gateways_of(trace))
    clean = {r["trace_id"] for r in scale_run.clean()}
    partial = [
        (t, len(trace["spans"]), expected[t]["spans"])
        for t, trace in jaeger_traces.items()
        if t in clean and len(trace["spans"]) != expected[t]["spans"]
    ]
    assert not partial, f"kept but not whole (trace, in Jaeger, made): {partial[:10]}"
    used = Counter(next(iter(_gateways_of(jaeger_traces[t]))) for t in clean if t in jaeger_traces)
    assert set(used) == {"gateway-1", "gateway-2"}, used


def test_every_error_and_slow_trace_is_kept(scale_run: ScaleRun, jaeger_traces: dict[str, dict[str, Any]]) -> None:
    clean = scale_run.clean()
    for kind in ("error", "slow"):
        calls = [r for r in clean if r["kind"] == kind]
        assert calls, kind
        missing = [r["trace_id"] for r in calls if r["trace_id"] not in jaeger_traces]
        assert not missing, f"{len(missing)} of {len(calls)} {kind} traces dropped: {missing[:5]}"
    for r in (r for r in clean if r["kind"] == "error"):
        spans = jaeger_traces[r["trace_id"]]["spans"]
        failed = [
            s for s in spans if {"error.type": "FeatureError", "cde.error.code": "E102"}.items() <= _tags(s).items()
        ]
        assert [s["operationName"] for s in failed] == ["Feature.advance_phase"], r["trace_id"]
    for r in (r for r in clean if r["kind"] == "slow"):
        slow = [s for s in jaeger_traces[r["trace_id"]]["spans"] if s["operationName"] == "SlowStep.wait"]
        assert len(slow) == 1 and slow[0]["duration"] > 1_000_000, r["trace_id"]  # µs


def test_the_kept_share_of_ok_traces_matches_the_setting(
    scale_run: ScaleRun, jaeger_traces: dict[str, dict[str, Any]]
) -> None:
    ok = [r for r in scale_run.clean() if r["kind"] == "ok"]
    kept = sum(1 for r in ok if r["trace_id"] in jaeger_traces)
    share = DEFAULT_SHARE_PERCENT / 100
    expected = len(ok) * share
    sigma = math.sqrt(len(ok) * share * (1 - share))
    print(f"[scale-out] kept {kept} of {len(ok)} ok traces ({kept / len(ok):.2%}; setting {share:.0%})")
    # The probabilistic policy hashes random trace ids: kept ~ Binomial(n, p). 5 sigma: a false
    # failure once in ~1.7 million runs.
    assert abs(kept - expected) <= 5 * sigma, (kept, len(ok), expected, sigma)


def test_prometheus_percentiles_are_exact_whatever_was_sampled(
    scale_run: ScaleRun, jaeger_traces: dict[str, dict[str, Any]]
) -> None:
    b = scale_run.backends
    durations = [r["duration"] for r in scale_run.records]
    selector = f'cde_operation_duration_seconds{{cde_operation="MeasuredStep.run",service_name="{scale_run.service}"}}'

    def counted() -> float | None:
        result = b.prom_query(f"histogram_count(sum({selector}))")
        value = float(result[0]["value"][1]) if result else 0.0
        return value if value == len(durations) else None

    try:
        poll_until(counted, timeout=DEADLINE_S, what="every measured step in Prometheus")
    except TimeoutError:
        result = b.prom_query(f"histogram_count(sum({selector}))")
        raise AssertionError(f"Prometheus counts {result}, the apps made {len(durations)}") from None
    # Metrics are not sampled: Prometheus counted every call, Jaeger holds a fraction of them.
    in_jaeger = sum(1 for t in jaeger_traces.values() for s in t["spans"] if s["operationName"] == "MeasuredStep.run")
    assert in_jaeger < 0.5 * len(durations), (in_jaeger, len(durations))
    ordered = sorted(durations)
    errors = {}
    for q in (0.5, 0.95, 0.99):
        [sample] = b.prom_query(f"histogram_quantile({q}, sum({selector}))")
        estimated = float(sample["value"][1])
        position = q * (len(ordered) - 1)
        low = math.floor(position)
        exact = ordered[low] + (ordered[min(low + 1, len(ordered) - 1)] - ordered[low]) * (position - low)
        errors[q] = abs(estimated - exact) / exact
        assert errors[q] <= 0.02, (q, estimated, exact)
    print(
        f"[scale-out] Prometheus counted {len(durations)} measured steps, Jaeger holds {in_jaeger}; "
        f"P50/P95/P99 relative errors {', '.join(f'{e:.3%}' for e in errors.values())}"
    )


def test_a_gateway_crash_is_bounded_and_reported_by_the_agent(
    scale_run: ScaleRun, jaeger_traces: dict[str, dict[str, Any]]
) -> None:
    b, outage = scale_run.backends, scale_run.outage
    before, during = outage["before"], outage["during"]
    reported = during["agent_failed"] - before["agent_failed"]
    assert reported > 0, outage
    # The survivor kept receiving, and only the dead gateway's endpoint failed.
    assert during["gateway_accepted"][0] > before["gateway_accepted"][0], outage
    # (Requests, all three signals. An export to the live gateway can time out too on a loaded
    # machine: it must stay the exception.)
    dead, alive = b.gateway_endpoints[1], b.gateway_endpoints[0]
    dead_failed, alive_failed = outage["outcome"].get((dead, "false"), 0), outage["outcome"].get((alive, "false"), 0)
    assert dead_failed >= 5 and alive_failed <= 0.05 * outage["outcome"].get((alive, "true"), 0), outage["outcome"]
    # Calls made while gateway-2 was down reached Jaeger through gateway-1 only.
    window = [
        r
        for r in scale_run.records
        if scale_run.kill_time + 0.5 < r["start"] and r["end"] < scale_run.restart_time - FAILED_BY_S
    ]
    through = Counter(
        next(iter(_gateways_of(jaeger_traces[r["trace_id"]]))) for r in window if r["trace_id"] in jaeger_traces
    )
    assert set(through) == {"gateway-1"}, through
    # What was lost is bounded by what the agent reported: every span of a must-keep trace that
    # is missing passed through the agent after the kill, in a request it counted as failed.
    must_keep = [r for r in window if r["kind"] != "ok"]
    lost = [r for r in must_keep if r["trace_id"] not in jaeger_traces]
    lost_spans = sum(r["spans"] for r in lost)
    print(
        f"[scale-out] outage {scale_run.restart_time - scale_run.kill_time:.1f}s: agent reported {reported:.0f} "
        f"spans failed; must-keep traces lost {len(lost)} of {len(must_keep)} ({lost_spans} spans); "
        f"gateway-2 receiving again {outage['reconnect_s']:.1f}s after its restart"
    )
    assert lost, "half the traces hash to the dead gateway: some must-keep ones must be lost"
    assert lost_spans <= reported, (lost_spans, reported)


def test_traffic_rebalances_after_the_gateway_restarts(
    scale_run: ScaleRun, jaeger_traces: dict[str, dict[str, Any]]
) -> None:
    after = [r for r in scale_run.records if r["start"] > scale_run.recovered_time + 1.0]
    through = Counter(
        next(iter(_gateways_of(jaeger_traces[r["trace_id"]]))) for r in after if r["trace_id"] in jaeger_traces
    )
    total = sum(through.values())
    assert total > 0 and set(through) == {"gateway-1", "gateway-2"}, through
    assert all(count > 0.2 * total for count in through.values()), through


def test_each_apps_logs_go_through_one_gateway(scale_run: ScaleRun) -> None:
    """Logs are routed by resource: one process's log stream stays on one gateway, in order."""
    b = scale_run.backends
    gateways_of_app: dict[str, set[str]] = {}
    torn: Counter[str] = Counter()
    for index, gateway_id in enumerate(b.gateway_ids):
        path = b.gateway_logs_file(index)
        for line in path.read_text().splitlines() if path.exists() else []:
            try:
                request = json.loads(line)
            except ValueError:  # the line gateway-2 was writing when it was killed
                torn[gateway_id] += 1
                continue
            for resource_logs in request.get("resourceLogs", []):
                attrs = {a["key"]: a["value"].get("stringValue") for a in resource_logs["resource"]["attributes"]}
                if attrs.get("service.name") == scale_run.service and resource_logs.get("scopeLogs"):
                    assert attrs.get(GATEWAY_ID_KEY) == gateway_id, attrs  # stamped by the gateway
                    gateways_of_app.setdefault(str(attrs["service.instance.id"]), set()).add(gateway_id)
    assert len(gateways_of_app) == APPS, gateways_of_app
    assert all(len(found) == 1 for found in gateways_of_app.values()), gateways_of_app
    assert torn["gateway-1"] == 0 and torn["gateway-2"] <= 1, torn


def test_traces_survive_a_jaeger_restart(scale_run: ScaleRun, jaeger_traces: dict[str, dict[str, Any]]) -> None:
    b = scale_run.backends
    b.restart_jaeger()
    for trace_id, trace in jaeger_traces.items():
        again = b.jaeger_get(f"/api/traces/{trace_id}")["data"]
        assert len(again) == 1 and len(again[0]["spans"]) == len(trace["spans"]), trace_id
