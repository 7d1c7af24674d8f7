"""Runs every cde-otel benchmark and prints a table with each goal, or one JSON object.

    .venv/bin/python bench/run.py                 # everything (~4-5 min on 2 cores), rich table
    .venv/bin/python bench/run.py --json          # one JSON object on stdout
    .venv/bin/python bench/run.py --quick --json  # short smoke run (~1 min)
    .venv/bin/python bench/run.py --only peers,overhead

Each benchmark runs in its own child process (``run.py --child NAME``): ``configure()``
installs global providers and patches classes, so no benchmark may inherit another's
state. Ratios are measured side by side inside one benchmark (see ``_timing``). A
benchmark that fails is reported under ``errors`` with its keys set to ``null`` and makes
the exit status 1; a missed goal is reported (``goals``), not an error.

Benchmarks: ``peers`` (bench_peers: our defaults next to the plain-SDK floor, the OTel +
structlog peer and Logfire, CPU per operation including export), ``host_logging``
(bench_host_logging: one of the host's stdlib records with our stamping and bridge, next to the
contrib root handler), ``overhead`` (bench_overhead:
the wrapper next to a hand-written one on the same providers), ``disabled`` (bench_disabled), ``quantiles``
(bench_quantiles), ``shutdown`` (bench_shutdown: exit time with the collector unreachable),
``health`` (bench_health: 200 req/s for 5 s, 5 bursts of 200 concurrent
connections measured by ApacheBench next to a bare server, 300 stalled connections), ``pipeline``
(bench_pipeline: export throughput and collector outage against the real Collector), ``scale``
(bench_scale: zero-drop throughput and CPU per span through agent → one / two gateways), ``mcp``
(bench_mcp: tool calls through a real stdio client, telemetry on / off and the hand-written
plain-SDK floor: round trip and server CPU per call, files and OTLP/HTTP to a real Collector), ``scrub``
(bench_scrub: ``scrub_text`` on a 1 KB message next to one plain ``re.sub`` pass),
``input_bounds`` (bench_input_bounds: how fast a 10 MB id, phase or path is refused, through the core
and through `cde-otel mcp` next to an SDK-only server).
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from bench_peers import GOALS as PEERS_GOALS  # light: the stdlib and two bench helpers

BENCH_DIR = Path(__file__).resolve().parent
BENCHMARKS = (
    "peers",
    "host_logging",
    "overhead",
    "disabled",
    "shutdown",
    "quantiles",
    "scrub",
    "health",
    "pipeline",
    "scale",
    "mcp",
    "input_bounds",
)


@dataclass(frozen=True)
class Goal:
    key: str
    label: str
    compare: Callable[[float, float], bool] | None  # None: reported for context
    threshold: float | None
    unit: str = ""
    decimals: int = 2

    @property
    def text(self) -> str:
        if self.compare is None or self.threshold is None:
            return "context"
        symbol = {operator.le: "≤", operator.lt: "<", operator.ge: "≥"}[self.compare]  # type: ignore[index]
        return f"{symbol} {self.threshold:,.{self.decimals}f}{self.unit}"

    def passed(self, value: Any) -> bool | None:
        if self.compare is None or self.threshold is None or not isinstance(value, int | float):
            return None
        return bool(self.compare(value, self.threshold))


GOALS: tuple[Goal, ...] = (
    Goal(
        "peers_default_vs_floor",
        "defaults / plain-SDK floor, CPU incl. export",
        operator.le,
        PEERS_GOALS["default/floor"],
    ),
    Goal(
        "peers_default_vs_peer",
        "defaults / OTel + structlog peer, CPU incl. export",
        operator.le,
        PEERS_GOALS["default/peer"],
    ),
    Goal("peers_like_for_like_vs_peer", "defaults + the peer's 2 lines, 2 records per op / peer", None, None),
    Goal("peers_log_file_vs_floor", "… with CDE_OTEL_LOG_FILE (a line per operation) / floor", None, None),
    Goal("peers_log_file_vs_peer", "… with CDE_OTEL_LOG_FILE / peer", None, None),
    Goal("host_log_record_vs_contrib_handler", "host stdlib record: our hooks / contrib root handler", None, None),
    Goal("overhead_spans_metrics_ratio_vs_floor", "wrapper / hand-written, same providers, no logs", None, None),
    Goal("disabled_ratio_vs_bare", "CDE_OTEL_ENABLED unset / uninstrumented", operator.le, 1.02),
    Goal("disabled_import_ms", "bootstrap .pth cost at start-up, disabled", operator.lt, 1.0, " ms", 0),
    Goal("shutdown_after_work_s", "exit after the work, collector unreachable (worst run)", operator.le, 2.0, " s"),
    Goal("export_spans_per_s_zero_drop", "spans/s, zero drop, default logging (INFO)", operator.ge, 10_000, "", 0),
    Goal("export_spans_per_s_zero_drop_floor", "… the plain-SDK floor on the same machine, same run", None, None),
    Goal("export_zero_drop_ratio_vs_floor", "zero-drop rate / the floor's, same run, 5 % steps", operator.ge, 0.95),
    Goal("collector_down_latency_ratio", "op p99 collector down / up", operator.le, 1.10),
    Goal("collector_down_rss_growth_second_half_mb", "RSS growth, 2nd half of long outage", operator.lt, 5.0, " MB", 0),
    Goal("health_p99_ms", "/health/ready p99 at 200 req/s", operator.lt, 5.0, " ms", 0),
    Goal("health_burst_failures", "failed requests, bursts of 200 concurrent connections", operator.le, 0, "", 0),
    Goal("health_burst_p99_ms", "/health/ready p99, 200 concurrent connections", operator.lt, 50.0, " ms", 0),
    Goal("health_burst_p99_ratio_vs_bare", "burst p99 / a bare CPython server's (same client, same run)", None, None),
    Goal("health_stalled_released_max_s", "300 stalled connections closed by (2 s timeout)", operator.le, 3.0, " s", 1),
    Goal("quantile_max_rel_error", "P50/P95/P99 worst rel. error (Prom 2.x)", operator.le, 0.02),
    Goal("scrub_1kb_us", "scrub_text, 1 KB ordinary message (µs)", operator.le, 20.0, " µs", 1),
    Goal("scrub_1kb_ratio_vs_re_sub", "… / one plain re.sub pass, same run", None, None),
    Goal("scrub_1kb_hinted_us", "scrub_text, 1 KB with look-alike words, full rules (µs)", None, None, " µs", 1),
    Goal("scale_spans_per_s_zero_drop_1_gateway", "spans/s, zero drop, agent → 1 gateway", None, None, "", 0),
    Goal("scale_spans_per_s_zero_drop_2_gateways", "spans/s, zero drop, agent → 2 gateways", None, None, "", 0),
    Goal("scale_agent_cpu_us_per_span", "agent CPU per span (µs)", None, None),
    Goal("scale_gateway_cpu_us_per_span", "gateway tier CPU per span (µs)", None, None),
    Goal("mcp_tool_call_ratio", "MCP tool call round trip, on / off (fastmcp 2.13, 2 processes)", operator.le, 1.15),
    Goal("mcp_tool_call_ratio_floor", "… the plain-SDK floor (same signals by hand) / off", None, None),
    Goal("mcp_tool_call_ratio_vs_floor", "… ours / the floor's, round by round (files)", operator.le, 1.0),
    Goal("mcp_tool_call_ratio_vs_floor_otlp", "… ours / the floor's, round by round (OTLP/HTTP)", operator.le, 1.0),
    Goal("mcp_server_cpu_ratio", "MCP server CPU per call, on / off (embedded default, files)", operator.le, 1.10),
    Goal("mcp_server_cpu_ratio_floor", "… the plain-SDK floor / off, same run", None, None),
    Goal("mcp_added_cpu_vs_floor", "CPU added per call: ours / the floor's (files)", operator.le, 1.0),
    Goal("mcp_server_cpu_ratio_otlp", "MCP server CPU per call, on / off (OTLP/HTTP)", operator.le, 1.10),
    Goal("mcp_server_cpu_ratio_floor_otlp", "… the plain-SDK floor / off, OTLP/HTTP", None, None),
    Goal("mcp_added_cpu_vs_floor_otlp", "CPU added per call: ours / the floor's (OTLP/HTTP)", operator.le, 1.0),
    Goal("mcp_added_main_thread_cpu_vs_floor", "… of the main threads alone (files)", None, None),
    Goal("mcp_added_main_thread_cpu_vs_floor_otlp", "… of the main threads alone (OTLP/HTTP)", None, None),
    Goal("mcp_tool_call_ratio_without_mcp_layer", "… on without the MCP layer / off", None, None),
    Goal("mcp_tool_call_ratio_logs_warning", "… on with CDE_OTEL_LOG_LEVEL=warning / off", None, None),
    Goal("mcp_tool_call_ratio_cde_otel_mcp", "… cde-otel mcp (SDK 2.x), on / off", None, None),
    Goal("core_refusal_max_ms", "10 MB id/phase/path refused by the core (worst)", operator.le, 50.0, " ms", 1),
    Goal("core_refusal_vs_reading_input_once", "… median / reading the 10 MB input once", None, None),
    Goal("mcp_refusal_overhead_ms", "10 MB arg via cde-otel mcp - SDK-only server", operator.le, 50.0, " ms", 1),
    Goal("mcp_answer_max_bytes", "size of that refusal's answer", None, None, " B", 0),
)
KEYS_BY_BENCHMARK = {
    "input_bounds": (
        "core_refusal_max_ms",
        "core_refusal_vs_reading_input_once",
        "mcp_refusal_overhead_ms",
        "mcp_answer_max_bytes",
    ),
    "peers": (
        "peers_default_vs_floor",
        "peers_default_vs_peer",
        "peers_like_for_like_vs_peer",
        "peers_log_file_vs_floor",
        "peers_log_file_vs_peer",
    ),
    "host_logging": ("host_log_record_vs_contrib_handler",),
    "overhead": ("overhead_spans_metrics_ratio_vs_floor",),
    "disabled": ("disabled_ratio_vs_bare", "disabled_import_ms"),
    "shutdown": ("shutdown_after_work_s",),
    "quantiles": ("quantile_max_rel_error",),
    "scrub": ("scrub_1kb_us", "scrub_1kb_ratio_vs_re_sub", "scrub_1kb_hinted_us"),
    "health": (
        "health_p99_ms",
        "health_burst_failures",
        "health_burst_p99_ms",
        "health_burst_p99_ratio_vs_bare",
        "health_stalled_released_max_s",
    ),
    "pipeline": (
        "export_spans_per_s_zero_drop",
        "export_spans_per_s_zero_drop_floor",
        "export_zero_drop_ratio_vs_floor",
        "collector_down_latency_ratio",
        "collector_down_rss_growth_second_half_mb",
    ),
    "scale": (
        "scale_spans_per_s_zero_drop_1_gateway",
        "scale_spans_per_s_zero_drop_2_gateways",
        "scale_agent_cpu_us_per_span",
        "scale_gateway_cpu_us_per_span",
    ),
    "mcp": (
        "mcp_tool_call_ratio",
        "mcp_tool_call_ratio_floor",
        "mcp_tool_call_ratio_vs_floor",
        "mcp_tool_call_ratio_vs_floor_otlp",
        "mcp_server_cpu_ratio",
        "mcp_server_cpu_ratio_floor",
        "mcp_added_cpu_vs_floor",
        "mcp_server_cpu_ratio_otlp",
        "mcp_server_cpu_ratio_floor_otlp",
        "mcp_added_cpu_vs_floor_otlp",
        "mcp_added_main_thread_cpu_vs_floor",
        "mcp_added_main_thread_cpu_vs_floor_otlp",
        "mcp_tool_call_ratio_without_mcp_layer",
        "mcp_tool_call_ratio_logs_warning",
        "mcp_tool_call_ratio_cde_otel_mcp",
    ),
}


# -- one benchmark, in a child process -------------------------------------------------------
def run_benchmark(name: str, quick: bool) -> dict[str, Any]:
    sys.path.insert(0, str(BENCH_DIR))
    if name == "peers":
        from bench_peers import measure_peers

        return measure_peers(quick=quick)
    if name == "host_logging":
        from bench_host_logging import measure_host_logging

        return measure_host_logging(quick=quick)
    if name == "overhead":
        from bench_overhead import measure_overhead

        return measure_overhead(quick=quick)
    if name == "disabled":
        from bench_disabled import measure_disabled

        return measure_disabled(quick=quick)
    if name == "shutdown":
        from bench_shutdown import measure_shutdown

        return measure_shutdown(quick=quick)
    if name == "quantiles":
        from bench_quantiles import measure_quantiles

        return measure_quantiles(quick=quick)
    if name == "scrub":
        from bench_scrub import measure_scrub

        return measure_scrub(quick=quick)
    if name == "health":
        from bench_health import measure_health_burst, measure_health_latency, measure_stalled_connections

        health = measure_health_latency(rate=200, seconds=1 if quick else 5)
        burst = measure_health_burst(bursts=1 if quick else 5)
        stalled = measure_stalled_connections()
        released = stalled["released_max_s"] if stalled["never_released"] == 0 else None
        return {
            "health_p99_ms": health["p99_ms"],
            "health": health,
            "health_burst_failures": burst["failures"],
            "health_burst_p99_ms": burst["p99_ms"],
            "health_burst_p99_ratio_vs_bare": burst["p99_ratio_vs_bare"],
            "health_burst": burst,
            "health_stalled_released_max_s": released,
            "health_stalled": stalled,
        }
    if name == "pipeline":
        from bench_pipeline import measure_pipeline

        result = measure_pipeline(quick=quick)
        result["collector_down_rss_growth_second_half_mb"] = result["collector_down"]["rss_growth_second_half_mb"]
        return result
    if name == "scale":
        from bench_scale import measure_scale

        return measure_scale(quick=quick)
    if name == "mcp":
        from bench_mcp import measure_mcp

        return measure_mcp(quick=quick)
    if name == "input_bounds":
        from bench_input_bounds import measure_input_bounds

        return measure_input_bounds(quick=quick)
    raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")


def _in_child(name: str, quick: bool) -> tuple[dict[str, Any], str | None, float]:
    started = time.monotonic()
    command = [sys.executable, str(Path(__file__)), "--child", name, *(["--quick"] if quick else [])]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        return {}, f"exit {proc.returncode}: {proc.stderr.strip()[-2000:]}", elapsed
    try:
        return json.loads(proc.stdout), None, elapsed
    except ValueError:
        return {}, f"unreadable output: {proc.stdout[-500:]!r} {proc.stderr[-1000:]}", elapsed


# -- the machine -------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for dist in ("opentelemetry-sdk", "opentelemetry-api", "opentelemetry-exporter-otlp-proto-http",
                 "opentelemetry-instrumentation", "structlog", "wrapt", "logfire", "cde-otel"):  # fmt: skip
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        "versions": versions,
    }


# -- all of them -------------------------------------------------------------------------------
def run_all(names: list[str], quick: bool) -> dict[str, Any]:
    result: dict[str, Any] = {"machine": machine(), "quick": quick, "errors": {}, "seconds": {}}
    for name in names:
        values, error, elapsed = _in_child(name, quick)
        result["seconds"][name] = round(elapsed, 1)
        if error is not None:
            result["errors"][name] = error
            values = {key: None for key in KEYS_BY_BENCHMARK[name]}
        result.update(values)
    result["machine"]["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    result["goals"] = {
        goal.key: {"goal": goal.text, "value": result[goal.key], "passed": goal.passed(result[goal.key])}
        for goal in GOALS
        if goal.key in result
    }
    return result


def print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 132)
    info = result["machine"]
    table = Table(
        title=f"cde-otel benchmarks{' (quick)' if result['quick'] else ''}",
        caption=f"{info['nproc']} × {info['cpu']}, {info['memory_gib']} GiB, Python {info['python']}, "
        f"OTel SDK {info['versions'].get('opentelemetry-sdk')}",
    )
    table.add_column("Benchmark")
    table.add_column("Key", style="dim")
    table.add_column("Value", justify="right")
    table.add_column("Goal", justify="right")
    table.add_column("Result")
    for goal in GOALS:
        if goal.key not in result:
            continue
        entry = result["goals"][goal.key]
        value = entry["value"]
        shown = "error" if value is None else (f"{value:,.4g}" if isinstance(value, float) else f"{value:,}")
        verdict = {True: "[green]pass[/]", False: "[red]FAIL[/]", None: "—"}[entry["passed"]]
        table.add_row(goal.label, goal.key, shown, entry["goal"], verdict)
    console.print(table)
    for name, error in result["errors"].items():
        console.print(f"[red]{name} failed:[/] {error}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        sys.stdout.write(json.dumps(run_benchmark(args.child, args.quick)) + "\n")
        return 0
    names = [n.strip() for n in args.only.split(",")] if args.only else list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}")
    result = run_all(names, args.quick)
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        print_table(result)
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
