"""Benchmark: MCP tool-call round trip with telemetry on / off (goal ≤ 1.15).

    .venv/bin/python bench/bench_mcp.py [--quick]

The orchestrator fixture (tests/mcp_fixtures: upstream's layout, async repository) runs on
fastmcp 2.13.0 - the upstream orchestrator's pin - from its cached venv
(scripts/mcp-test-venvs.sh), three times side by side, each with its own project directory:

* ``off`` - cde-otel installed, ``CDE_OTEL_ENABLED`` unset;
* ``on`` - ``CDE_OTEL_ENABLED=true`` and nothing else: the embedded default (local OTLP-JSON
  files, here in a temporary directory), so spans, metrics and logs are really exported;
* ``on_without_mcp`` - the same with ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=cde_mcp``: the
  domain instrumentation and logging without the MCP layer, to tell the two costs apart;
* ``on_logs_warning`` - ``on`` with ``CDE_OTEL_LOG_LEVEL=warning``: without the per-operation
  start/end log events, to show their share.

One official ``mcp`` client (this process) holds a stdio session with each and sends the same
entity-touching tool calls to all three, interleaved: each round times ``calls`` round trips
per server (a cycle of ``cde_startFeature`` and two ``cde_submitWork``) in a fresh random
order, and the ratio is the median over rounds of the per-round ratio of median round trips
(see ``_timing`` for why). ``our_server`` repeats the on/off pair for ``cde-otel mcp``
(official SDK 2.x, whose span is adopted) for context.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "mcp_fixtures"
_ROUNDS = {"full": 41, "quick": 7}
_CYCLES = {"full": 6, "quick": 4}  # cycles (3 calls) per server per round
Call = Callable[[Any, str, int], Awaitable[None]]


def _venv(name: str) -> Path:
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "mcp-test-venvs.sh")], capture_output=True, text=True, check=True
    )
    for line in done.stdout.splitlines():
        key, _, value = line.partition("=")
        if key == f"CDE_OTEL_VENV_{name.upper()}":
            return Path(value) / "bin" / "python"
    raise RuntimeError(f"no venv {name} in {done.stdout!r}")


def _env(local: Path, mode: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDE_OTEL_", "OTEL_", "TRACEPARENT", "BAGGAGE"))}
    env.pop("PYTHONPATH", None)
    if mode != "off":
        env.update(CDE_OTEL_ENABLED="true", CDE_OTEL_LOCAL_DIR=str(local / mode))
    if mode == "on_without_mcp":
        env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = "cde_mcp"
    if mode == "on_logs_warning":
        env["CDE_OTEL_LOG_LEVEL"] = "warning"
    env.update(extra)
    return env


def _cycle(prompt_key: str, phase_key: str) -> Call:
    """One cycle of entity-touching calls: start a feature, submit its first two phases. The two
    servers name the prompt and phase arguments differently (upstream's names, ours)."""

    async def cycle(session: Any, project: str, i: int) -> None:
        started = await session.call_tool(
            "cde_startFeature", {prompt_key: f"Feature {i} of the bench", "project_path": project}
        )
        feature_id = json.loads(started.content[0].text)["feature_id"]
        for phase in ("define", "decompose"):
            args = {"feature_id": feature_id, phase_key: phase, "results": {"n": i}, "project_path": project}
            await session.call_tool("cde_submitWork", args)

    return cycle


_fixture_cycle = _cycle("user_prompt", "phase_id")
_ours_cycle = _cycle("prompt", "phase")


async def _interleaved(
    servers: dict[str, tuple[str, list[str], dict[str, str]]], cycle: Call, rounds: int, cycles: int, work: Path
) -> dict[str, list[float]]:
    """Per round and server: the median round trip (ms) of the ``3 * cycles`` calls it made."""
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    per_round: dict[str, list[float]] = {name: [] for name in servers}
    async with AsyncExitStack() as stack:
        sessions: dict[str, tuple[Any, str]] = {}
        for name, (command, args, env) in servers.items():
            project_dir = work / f"project-{name}"
            project_dir.mkdir()
            errlog = stack.enter_context((work / f"{name}.stderr").open("w"))
            read, write = await stack.enter_async_context(
                stdio_client(StdioServerParameters(command=command, args=args, env=env, cwd=work), errlog=errlog)
            )
            session = await stack.enter_async_context(ClientSession(read, write))
            await session.initialize()
            sessions[name] = (session, str(project_dir))
        for session, project in sessions.values():  # warm-up: imports, first writes, caches
            for i in range(3):
                await cycle(session, project, -1 - i)
        order = random.Random(20_261_130)
        names = list(sessions)
        counter = 0
        for _ in range(rounds):
            order.shuffle(names)
            for name in names:
                session, project = sessions[name]
                trips: list[float] = []
                for _ in range(cycles):
                    counter += 1
                    trips.append(await _timed_cycle(cycle, session, project, counter))
                per_round[name].append(statistics.median(trips))
    return per_round


async def _timed_cycle(cycle: Call, session: Any, project: str, i: int) -> float:
    start = time.perf_counter_ns()
    await cycle(session, project, i)
    return (time.perf_counter_ns() - start) / 3 / 1e6  # ms per call (3 calls a cycle)


def _ratio(per_round: dict[str, list[float]], a: str, b: str) -> float:
    return round(statistics.median(x / y for x, y in zip(per_round[a], per_round[b], strict=True)), 3)


def measure_layer(iterations: int = 20_000) -> dict[str, float]:
    """The MCP layer's own cost per request, in process (µs): span, attributes, context, outcome, record.

    Providers as ``configure()`` builds them (batch span processor, the duration views), with
    exporters that drop everything: the calling thread's cost, not a file or a network.
    """
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from cde_otel.instrumentation.mcp import MCPInstrumentor
    from cde_otel.telemetry._histograms import duration_views

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Drop()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()], views=duration_views("exponential", 750))
    MCPInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    telemetry = MCPInstrumentor().mcp_telemetry
    assert telemetry is not None
    params = {"name": "cde_submitWork", "arguments": {"feature_id": "f" * 32, "phase_id": "define", "results": {}}}
    result = {"content": [{"type": "text", "text": '{"status": "ok", "phase": "decompose"}'}], "isError": False}
    tracer = tracer_provider.get_tracer("framework")
    timings: dict[str, float] = {}
    try:
        for path in ("owned", "adopted"):
            start = time.perf_counter_ns()
            for i in range(iterations):
                if path == "owned":
                    call = telemetry.begin("tools/call", params, request_id=i, transport="pipe")
                    call.result = result
                    telemetry.end(call)
                else:  # the framework's span is made (and paid) by the framework: only our share is timed
                    with tracer.start_as_current_span("tools/call") as span:
                        call = telemetry.begin("tools/call", params, request_id=i, transport="pipe", adopt=span)
                        call.result = result
                        telemetry.settle(call)
                        telemetry.release(call)
                        telemetry.record(call, 0.001)
            timings[path] = (time.perf_counter_ns() - start) / iterations / 1e3
        bare = time.perf_counter_ns()
        for _ in range(iterations):
            with tracer.start_as_current_span("tools/call"):
                pass
        timings["adopted"] -= (time.perf_counter_ns() - bare) / iterations / 1e3
    finally:
        MCPInstrumentor().uninstrument()
        tracer_provider.shutdown()
    return {f"mcp_layer_{path}_us": round(value, 1) for path, value in timings.items()}


def measure_mcp(quick: bool = False) -> dict[str, Any]:
    mode = "quick" if quick else "full"
    rounds, cycles = _ROUNDS[mode], _CYCLES[mode]
    fixture_python = str(_venv("fastmcp_2_13"))
    ours = str(Path(sys.executable).with_name("cde-otel"))
    with tempfile.TemporaryDirectory(prefix="cde-bench-mcp-") as tmp:
        work = Path(tmp)
        fixture = {
            m: (fixture_python, [str(FIXTURES / "orchestrator_server.py")], _env(work, m, PYTHONPATH=str(FIXTURES)))
            for m in ("off", "on", "on_without_mcp", "on_logs_warning")
        }
        (work / "fixture").mkdir()
        per_round = anyio.run(_interleaved, fixture, _fixture_cycle, rounds, cycles, work / "fixture")
        (work / "ours").mkdir()
        ours_servers = {m: (ours, ["mcp"], _env(work / "ours", m)) for m in ("off", "on")}
        ours_round = anyio.run(_interleaved, ours_servers, _ours_cycle, rounds, cycles, work / "ours")
    medians = {name: round(statistics.median(values), 3) for name, values in per_round.items()}
    layer = measure_layer(2_000 if quick else 20_000)
    return {
        "mcp_tool_call_ratio": _ratio(per_round, "on", "off"),
        "mcp_tool_call_ratio_without_mcp_layer": _ratio(per_round, "on_without_mcp", "off"),
        "mcp_tool_call_ratio_logs_warning": _ratio(per_round, "on_logs_warning", "off"),
        "mcp_tool_call_ratio_cde_otel_mcp": _ratio(ours_round, "on", "off"),
        "mcp": {
            "server": "orchestrator fixture on fastmcp 2.13.0 (mcp 1.x), stdio",
            "rounds": rounds,
            "calls_per_round_per_server": 3 * cycles,
            "median_round_trip_ms": medians,
            "mcp_layer_ms_per_call": round(medians["on"] - medians["on_without_mcp"], 3),
            **layer,
            "cde_otel_mcp_median_round_trip_ms": {n: round(statistics.median(v), 3) for n, v in ours_round.items()},
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--layer", action="store_true", help="only the in-process cost of the MCP layer")
    parser.add_argument("--profile", action="store_true", help="cProfile of the in-process MCP layer (top 25)")
    options = parser.parse_args()
    if options.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(measure_layer, 20_000)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    elif options.layer:
        print(json.dumps(measure_layer(), indent=2))
    else:
        print(json.dumps(measure_mcp(quick=options.quick), indent=2))
