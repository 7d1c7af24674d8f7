"""Benchmark: MCP tool calls with telemetry on / off - round trip and server CPU, next to a floor.

    .venv/bin/python bench/bench_mcp.py [--quick] [--py-spy DIR]

The orchestrator fixture (tests/mcp_fixtures: upstream's layout, async repository; served by
``_orchestrator_server`` with upstream's per-call logging shape: ~5 spans and ~6 host records a
call) runs on fastmcp 2.13.0 - the upstream orchestrator's pin - from its cached venv
(scripts/mcp-test-venvs.sh), side by side, each server with its own project directory:

* ``off`` - cde-otel installed, ``CDE_OTEL_ENABLED`` unset;
* ``on`` - ``CDE_OTEL_ENABLED=true`` and nothing else: the embedded default (local OTLP-JSON
  files, here in a temporary directory), so spans, metrics and logs are really exported;
* ``floor`` - the same signals hand-written on the plain SDK (``_floor_server``, none of our
  code), stock OTLP-JSON file exporters;
* ``on_otlp`` / ``floor_otlp`` - the same two exporting OTLP/HTTP to a real Collector on loopback;
* ``..._2`` - a second process of each of these four: two processes of the same code can be several
  per cent apart (``mcp_tool_call_ratio_per_process`` shows by how much in a run), so each
  variant's round trips and CPU are the mean of its two. The servers start in an order drawn from
  the run's seed: where a process starts among the others shifts its cost too;
* ``on_without_mcp`` (``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=cde_mcp``) and ``on_logs_warning``
  (``CDE_OTEL_LOG_LEVEL=warning``): context, to tell the MCP layer's and the log events' shares.

One official ``mcp`` client (this process) holds a stdio session with each and sends the same
entity-touching tool calls to all, interleaved: each round times ``calls`` round trips per
server (a cycle of ``cde_startFeature`` and two ``cde_submitWork``) in a fresh random order (its
seed new each run, and reported), so every project grows to hundreds of features. **Every result
is checked** (not an error, the feature id, the next phase): a failing server cannot look cheap.

* Round trip: the median over rounds of the per-round ratio of median round trips (``_timing``).
* Server CPU per call: utime + stime of the server process (every thread, export included) from
  ``/proc/<pid>/stat``, from after the warm-up to the end of a settle period that lets the batch
  processors export what the last calls queued, divided by the timed calls; and the same of the
  main thread alone (``server_main_thread_cpu_ms_per_call``), whose CPU the round trip follows.
  ``mcp_added_cpu_vs_floor`` = (on - off) / (floor - off): the CPU cde-otel adds per call over
  what the hand-written floor adds.
  ``mcp_added_main_thread_cpu_vs_floor`` (and ``_otlp``) is the same of the main threads alone.
* The floor must emit what we emit: the spans and log records each wrote, and the attributes they
  carry, are counted (files, or the Collector's output by ``service.name``) and must be equal.

``our_server`` repeats the on/off round trip for ``cde-otel mcp`` (official SDK 2.x, whose span
is adopted) for context. ``--py-spy DIR`` records a py-spy profile of ``on`` and ``floor`` (``--py-spy-servers`` others)
while they are driven (raw folded stacks, all threads).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path
from typing import Any

import anyio
import psutil
from _mcp_servers import CLOCK_TICKS, Collector, Server, clean_env, cpu_ticks, emitted, fixture_servers, venv_python

_ROUNDS = {"full": 41, "quick": 3}
_CYCLES = {"full": 6, "quick": 2}  # cycles (3 calls) per server per round
_WARM_UP_CYCLES = 3  # per server, before anything is measured
_SETTLE_S = 6.0  # > the span processor's 5 s schedule: what the last calls queued is exported
_NEXT = {"define": "decompose", "decompose": "design"}
Call = Callable[[Any, str, int], Awaitable[None]]


class WrongResult(AssertionError):
    """A tool call failed or answered something else than the workflow says."""


def _answer(result: Any, tool: str) -> dict[str, Any]:
    text = result.content[0].text if result.content else ""
    if getattr(result, "is_error", None) or getattr(result, "isError", None):  # mcp 2.x / 1.x spelling
        raise WrongResult(f"{tool} failed: {text[:300]}")
    answer = json.loads(text)
    if not isinstance(answer, dict) or answer.get("status") == "error":
        raise WrongResult(f"{tool} answered an error: {text[:300]}")
    return answer


def _cycle(prompt_key: str, phase_key: str) -> Call:
    """One cycle of entity-touching calls: start a feature, submit its first two phases; every answer
    checked. The two servers name the prompt and phase arguments differently (upstream's names, ours)."""

    async def cycle(session: Any, project: str, i: int) -> None:
        started = _answer(
            await session.call_tool(
                "cde_startFeature", {prompt_key: f"Feature {i} of the bench", "project_path": project}
            ),
            "cde_startFeature",
        )
        feature_id = started.get("feature_id")
        if not isinstance(feature_id, str) or not feature_id:
            raise WrongResult(f"cde_startFeature gave no feature id: {started}")
        for phase in ("define", "decompose"):
            args = {"feature_id": feature_id, phase_key: phase, "results": {"n": i}, "project_path": project}
            answer = _answer(await session.call_tool("cde_submitWork", args), "cde_submitWork")
            now = answer.get("phase", answer.get("current_phase"))
            if now != _NEXT[phase]:
                raise WrongResult(f"cde_submitWork({phase}) left the feature in {now!r}: {answer}")

    return cycle


_fixture_cycle = _cycle("user_prompt", "phase_id")
_ours_cycle = _cycle("prompt", "phase")


class Driven:
    """What one interleaved run measured: round trips per round, CPU per call, the server pids."""

    def __init__(self, names: list[str]) -> None:
        self.per_round: dict[str, list[float]] = {name: [] for name in names}
        self.cpu_ms_per_call: dict[str, float] = {}
        self.main_thread_cpu_ms_per_call: dict[str, float] = {}
        self.pids: dict[str, int] = {}
        self.calls = 0


async def _interleaved(  # noqa: PLR0917  # anyio.run passes positional arguments only
    servers: dict[str, Server],
    cycle: Call,
    rounds: int,
    cycles: int,
    work: Path,
    profile: Callable[[dict[str, int]], Any] | None = None,
    seed: int = 0,
) -> Driven:
    """Per round and server: the median round trip (ms) of the ``3 * cycles`` calls it made; the
    server CPU per call over all rounds. ``seed`` draws each round's order of the servers."""
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    driven = Driven(list(servers))
    me = psutil.Process()
    async with AsyncExitStack() as stack:
        sessions: dict[str, tuple[Any, str]] = {}
        for name, server in servers.items():
            project_dir = work / f"project-{name}"
            project_dir.mkdir()
            errlog = stack.enter_context((work / f"{name}.stderr").open("w"))
            before = {child.pid for child in me.children()}
            params = StdioServerParameters(command=server.command, args=server.args, env=server.env, cwd=work)
            read, write = await stack.enter_async_context(stdio_client(params, errlog=errlog))
            session = await stack.enter_async_context(ClientSession(read, write))
            await session.initialize()
            (pid,) = {child.pid for child in me.children()} - before
            driven.pids[name] = pid
            sessions[name] = (session, str(project_dir))
        for session, project in sessions.values():  # warm-up: imports, first writes, caches
            for i in range(_WARM_UP_CYCLES):
                await cycle(session, project, -1 - i)
        profiling = profile(driven.pids) if profile is not None else None
        # The main thread's interval inside the process's (read after it, and before it at the end), so
        # its share stays within the process's but for the truncation of each reading to clock ticks.
        start_ticks = {name: cpu_ticks(pid) for name, pid in driven.pids.items()}
        start_main = {name: cpu_ticks(pid, main_thread=True) for name, pid in driven.pids.items()}
        order = random.Random(seed)
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
                driven.per_round[name].append(statistics.median(trips))
        await anyio.sleep(_SETTLE_S)
        driven.calls = 3 * cycles * rounds
        for name, pid in driven.pids.items():
            main = cpu_ticks(pid, main_thread=True) - start_main[name]
            ticks = cpu_ticks(pid) - start_ticks[name]
            driven.cpu_ms_per_call[name] = ticks * 1e3 / CLOCK_TICKS / driven.calls
            driven.main_thread_cpu_ms_per_call[name] = main * 1e3 / CLOCK_TICKS / driven.calls
        if profiling is not None:
            profiling()
    return driven


def gc_per_call(path: Path, warm_up_calls: int) -> dict[str, Any]:
    """From a server's ``CDE_BENCH_GC_FILE``: the collections' CPU ms per call and their number by
    generation, from the first timed call's start to the last call's; None for both when the server
    did not write it (it was stopped before it could exit)."""
    if not path.exists():
        return {"ms_per_call": None, "collections": None}
    doc = json.loads(path.read_text())
    calls = doc["calls"][warm_up_calls:]
    if not calls:
        raise ValueError(f"{path.name}: no timed call")
    first, last = calls[0], calls[-1]
    counted = [0, 0, 0]
    cpu_ms = 0.0
    for generation, ended, ms in doc["collections"]:
        if first <= ended <= last:
            counted[generation] += 1
            cpu_ms += ms
    return {"ms_per_call": round(cpu_ms / len(calls), 4), "collections": counted}


async def _timed_cycle(cycle: Call, session: Any, project: str, i: int) -> float:
    start = time.perf_counter_ns()
    await cycle(session, project, i)
    return (time.perf_counter_ns() - start) / 3 / 1e6  # ms per call (3 calls a cycle)


def _processes(variant: str, measured: dict[str, Any]) -> list[str]:
    """The servers of a variant that were measured: ``on`` and its second process ``on_2``."""
    return [name for name in (variant, f"{variant}_2") if name in measured]


def _ratio(per_round: dict[str, list[float]], a: str, b: str, *, pooled: bool = True) -> float:
    """The median over rounds of ``a``'s round trip over ``b``'s; each is every process of its
    variant (``on`` and ``on_2``), averaged per round (``a`` alone unless ``pooled``)."""
    a_means = _round_means(per_round, _processes(a, per_round) if pooled else [a])
    b_means = _round_means(per_round, _processes(b, per_round))
    return round(statistics.median(x / y for x, y in zip(a_means, b_means, strict=True)), 3)


def _round_means(per_round: dict[str, list[float]], processes: list[str]) -> list[float]:
    return [statistics.fmean(values) for values in zip(*(per_round[name] for name in processes), strict=True)]


def _py_spy(directory: Path, names: tuple[str, ...]) -> Callable[[dict[str, int]], Callable[[], None]]:
    """Starts ``py-spy record`` on the named servers; the returned callable stops them (files written)."""
    py_spy = Path(sys.executable).with_name("py-spy")

    def start(pids: dict[str, int]) -> Callable[[], None]:
        directory.mkdir(parents=True, exist_ok=True)
        procs = [
            subprocess.Popen(
                [
                    str(py_spy),
                    "record",
                    "--nonblocking",
                    "-r",
                    "200",
                    "--threads",
                    "-f",
                    "raw",
                    "-o",
                    str(directory / f"{name}.txt"),
                    "-p",
                    str(pids[name]),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for name in names
        ]

        def stop() -> None:
            for proc in procs:
                proc.send_signal(signal.SIGINT)
            for proc in procs:
                proc.wait(30)

        return stop

    return start


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


def _cpu_figures(driven: Driven, on: str, floor: str) -> dict[str, float]:
    """CPU per call of a variant: the mean of its processes (``on`` and ``on_2``); and the same of
    their main threads alone, which tells whether what we add lands where requests wait for it."""
    cpu, main = driven.cpu_ms_per_call, driven.main_thread_cpu_ms_per_call
    ours, theirs = (statistics.fmean(cpu[name] for name in _processes(v, cpu)) for v in (on, floor))
    ours_main, theirs_main = (statistics.fmean(main[name] for name in _processes(v, main)) for v in (on, floor))
    return {
        "ratio": round(ours / cpu["off"], 3),
        "ratio_floor": round(theirs / cpu["off"], 3),
        "added_vs_floor": _added_ratio(ours, theirs, cpu["off"]),
        "main_thread_added_vs_floor": _added_ratio(ours_main, theirs_main, main["off"]),
    }


def _added_ratio(ours: float, theirs: float, off: float) -> float:
    """(ours - off) / (theirs - off); NaN when the floor added nothing measurable."""
    return round((ours - off) / (theirs - off), 3) if theirs > off else float("nan")


def _same_output(counts: dict[str, dict[str, int]], on: str, floor: str) -> None:
    """The floor is only a floor if it emitted what we emitted: the same spans and log records,
    carrying the same number of attributes."""
    if counts[on] != counts[floor] or not all(counts[on].values()):
        raise AssertionError(f"{on} and {floor} emitted different telemetry: {counts[on]} vs {counts[floor]}")


def measure_mcp(
    quick: bool = False,
    py_spy: Path | None = None,
    otlp: bool = True,
    profiled: tuple[str, ...] = ("on", "floor"),
    seed: int | None = None,
) -> dict[str, Any]:
    mode = "quick" if quick else "full"
    # A fresh order of the servers every run (reported, --seed repeats one): a fixed one would
    # give every run the same position effects, which then never average out.
    seed = random.SystemRandom().randrange(1, 2**31) if seed is None else seed
    rounds, cycles = _ROUNDS[mode], _CYCLES[mode]
    fixture_python = str(venv_python("fastmcp_2_13"))
    ours = str(Path(sys.executable).with_name("cde-otel"))
    load_start = [round(v, 2) for v in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="cde-bench-mcp-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        collector = stack.enter_context(Collector(work)) if otlp else None
        fixture = fixture_servers(fixture_python, work, collector.endpoint if collector is not None else None)
        started = list(fixture)
        random.Random(f"start order {seed}").shuffle(started)
        fixture = {name: fixture[name] for name in started}
        for name, server in fixture.items():
            server.env["CDE_BENCH_GC_FILE"] = str(work / f"{name}.gc.json")
        (work / "fixture").mkdir()
        profile = _py_spy(py_spy, profiled) if py_spy is not None else None
        collector_start = collector.cpu_ticks() if collector is not None else 0
        driven = anyio.run(_interleaved, fixture, _fixture_cycle, rounds, cycles, work / "fixture", profile, seed)
        collector_ms = 0.0
        if collector is not None:
            collector_ms = (collector.cpu_ticks() - collector_start) * 1e3 / CLOCK_TICKS / driven.calls
        stack.close()  # the Collector writes out what it holds
        collected = {name: gc_per_call(work / f"{name}.gc.json", 3 * _WARM_UP_CYCLES) for name in fixture}
        counts: dict[str, dict[str, int]] = {
            name: emitted(fixture[name], collector.out if collector is not None else None)
            for name in ("on", "on_2", "floor", "floor_2", "on_otlp", "on_otlp_2", "floor_otlp", "floor_otlp_2")
            if name in fixture
        }
        (work / "ours").mkdir()
        ours_on = {"CDE_OTEL_ENABLED": "true", "CDE_OTEL_LOCAL_DIR": str(work / "ours-on")}
        ours_servers = {m: Server(ours, ["mcp"], clean_env(**(ours_on if m == "on" else {}))) for m in ("off", "on")}
        ours_round = anyio.run(_interleaved, ours_servers, _ours_cycle, rounds, cycles, work / "ours", None, seed)
    _same_output(counts, "on", "floor")
    _same_output(counts, "on", "on_2")
    _same_output(counts, "floor", "floor_2")
    if otlp:
        _same_output(counts, "on_otlp", "floor_otlp")
        _same_output(counts, "on_otlp", "on_otlp_2")
        _same_output(counts, "floor_otlp", "floor_otlp_2")
    load_end = [round(v, 2) for v in os.getloadavg()]
    per_round = driven.per_round
    medians = {name: round(statistics.median(values), 3) for name, values in per_round.items()}
    files = _cpu_figures(driven, "on", "floor")
    exported = _cpu_figures(driven, "on_otlp", "floor_otlp") if otlp else dict.fromkeys(files, float("nan"))
    layer = measure_layer(2_000 if quick else 20_000)
    return {
        "mcp_tool_call_ratio": _ratio(per_round, "on", "off"),
        "mcp_tool_call_ratio_floor": _ratio(per_round, "floor", "off"),
        # Ours against the floor round by round: what differs between the two ratios above, without
        # the scatter of ``off``'s own round trips in each.
        "mcp_tool_call_ratio_vs_floor": _ratio(per_round, "on", "floor"),
        "mcp_tool_call_ratio_vs_floor_otlp": _ratio(per_round, "on_otlp", "floor_otlp") if otlp else float("nan"),
        "mcp_tool_call_ratio_without_mcp_layer": _ratio(per_round, "on_without_mcp", "off"),
        "mcp_tool_call_ratio_logs_warning": _ratio(per_round, "on_logs_warning", "off"),
        "mcp_tool_call_ratio_cde_otel_mcp": _ratio(ours_round.per_round, "on", "off"),
        # Each process alone: how far two processes of the same code are apart in this run.
        "mcp_tool_call_ratio_per_process": {
            name: _ratio(per_round, name, "off", pooled=False) for name in ("on", "on_2", "floor", "floor_2")
        },
        "mcp_server_cpu_ratio": files["ratio"],
        "mcp_server_cpu_ratio_floor": files["ratio_floor"],
        "mcp_added_cpu_vs_floor": files["added_vs_floor"],
        "mcp_server_cpu_ratio_otlp": exported["ratio"],
        "mcp_server_cpu_ratio_floor_otlp": exported["ratio_floor"],
        "mcp_added_cpu_vs_floor_otlp": exported["added_vs_floor"],
        "mcp_added_main_thread_cpu_vs_floor": files["main_thread_added_vs_floor"],
        "mcp_added_main_thread_cpu_vs_floor_otlp": exported["main_thread_added_vs_floor"],
        "mcp": {
            "server": "orchestrator fixture on fastmcp 2.13.0 (mcp 1.x), stdio, upstream's per-call logging",
            "rounds": rounds,
            "round_order_seed": seed,
            "calls_per_round_per_server": 3 * cycles,
            "timed_calls_per_server": driven.calls,
            "median_round_trip_ms": medians,
            "server_cpu_ms_per_call": {name: round(v, 3) for name, v in driven.cpu_ms_per_call.items()},
            # The thread that serves the requests: the round trip follows its CPU, not the export threads'.
            "server_main_thread_cpu_ms_per_call": {
                name: round(v, 3) for name, v in driven.main_thread_cpu_ms_per_call.items()
            },
            "collector_cpu_ms_per_call": round(collector_ms, 3),
            # The garbage collector's CPU time per timed call (its part of the figures above), and
            # how many collections of each generation ran meanwhile.
            "server_gc_ms_per_call": {name: c["ms_per_call"] for name, c in collected.items()},
            "server_gc_collections": {name: c["collections"] for name, c in collected.items()},
            "emitted": counts,
            "load_average": {"start": load_start, "end": load_end},
            "mcp_layer_ms_per_call": round(medians["on"] - medians["on_without_mcp"], 3),
            **layer,
            "cde_otel_mcp_median_round_trip_ms": {
                n: round(statistics.median(v), 3) for n, v in ours_round.per_round.items()
            },
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--layer", action="store_true", help="only the in-process cost of the MCP layer")
    parser.add_argument("--profile", action="store_true", help="cProfile of the in-process MCP layer (top 25)")
    parser.add_argument("--seed", type=int, help="the seed of the servers' order in each round (default: a fresh one)")
    parser.add_argument("--py-spy", type=Path, help="py-spy profiles of the on and floor servers into this directory")
    parser.add_argument(
        "--py-spy-servers", default="on,floor", help="which servers --py-spy profiles (e.g. on_otlp,floor_otlp)"
    )
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
        print(
            json.dumps(
                measure_mcp(
                    quick=options.quick,
                    py_spy=options.py_spy,
                    profiled=tuple(options.py_spy_servers.split(",")),
                    seed=options.seed,
                ),
                indent=2,
            )
        )
