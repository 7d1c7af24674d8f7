"""Smoke test of ``bench/run.py``: a quick run produces the documented JSON keys with the right types;
and the parts of ``bench_mcp_instructions.py`` that run without Valgrind.

No timing is asserted here (speed goals live in the benchmarks themselves): the test only
proves that every benchmark runs end to end and reports what ``docs/benchmarks.md``
promises. The pipeline part needs the real Collector: ``tests/e2e/test_bench_pipeline_smoke.py``.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import pytest

NUMBER = (int, float)
BenchRunner = Callable[..., dict[str, Any]]


def test_in_process_benchmarks_report_their_keys(run_bench: BenchRunner) -> None:
    keys = [
        "peers_default_vs_floor",
        "peers_default_vs_peer",
        "peers_like_for_like_vs_peer",
        "peers_log_file_vs_floor",
        "peers_log_file_vs_peer",
        "host_log_record_vs_contrib_handler",
        "overhead_spans_metrics_ratio_vs_floor",
        "disabled_ratio_vs_bare",
        "disabled_import_ms",
        "shutdown_after_work_s",
        "health_p99_ms",
        "quantile_max_rel_error",
    ]
    result = run_bench("peers,host_logging,overhead,disabled,shutdown,quantiles,health", keys)
    machine = result["machine"]
    assert isinstance(machine["nproc"], int)
    assert isinstance(machine["cpu"], str)
    assert isinstance(machine["python"], str)
    assert isinstance(machine["versions"]["opentelemetry-sdk"], str)

    for key in keys:  # each a number (run_bench)
        assert result[key] > 0, key
    assert result["goals"]["overhead_spans_metrics_ratio_vs_floor"]["passed"] is None  # context only

    ns = result["overhead"]["ns_per_op"]
    assert set(ns) == {"bare", "instrumented", "instrumented_no_logs", "floor_no_logs", "upstream_json"}
    assert all(isinstance(value, NUMBER) for value in ns.values())

    peers = result["peers"]
    # Logfire is in the dev extras (bench), so it is measured here too.
    assert set(peers["cpu_ns_per_op"]) == {
        "bare",
        "floor",
        "peer",
        "default",
        "default_log_file",
        "default_like_peer",
        "logfire",
    }
    assert all(value > 0 for value in peers["cpu_ns_per_op"].values())
    assert peers["cpu_ratios"]["default/floor"] == result["peers_default_vs_floor"]
    assert peers["stderr_lines"] > 0  # the peer's JSON lines were really written (ours go to no console)

    host_logging = result["host_logging"]["cpu_ns_per_record"]
    assert set(host_logging) == {"host", "stamped", "cde_otel", "contrib_handler"}
    assert result["goals"]["host_log_record_vs_contrib_handler"]["passed"] is None  # context only
    assert result["goals"]["peers_default_vs_floor"]["goal"] == "≤ 1.25"
    assert result["goals"]["peers_default_vs_peer"]["goal"] == "≤ 0.40"
    assert peers["goals"] == {"default/floor": 1.25, "default/peer": 0.4}  # what bench_peers reports agrees

    disabled = result["disabled"]
    assert disabled["method_is_plain_function"] is True
    assert disabled["heavy_modules_imported"] == []
    assert isinstance(disabled["disabled_ratio_cross_process"], NUMBER)

    shutdown = result["shutdown"]
    for collector in ("refused", "silent"):
        assert shutdown[collector]["warnings_per_run"] == 1  # counted and reported once per process
        assert shutdown[collector]["median_s"] > 0
    assert result["shutdown_after_work_s"] == max(shutdown["refused"]["max_s"], shutdown["silent"]["max_s"])

    assert result["health"]["endpoint"] == "/health/ready"
    assert result["health"]["requests"] > 0
    burst, stalled = result["health_burst"], result["health_stalled"]
    assert burst["requests"] == burst["connections"] * burst["bursts"] > 0
    assert result["health_burst_failures"] == burst["failures"] and isinstance(burst["failures"], int)
    assert isinstance(result["health_burst_p99_ms"], NUMBER)
    assert stalled["stalled"] == stalled["released"] + stalled["never_released"]
    for key in ("health_burst_failures", "health_burst_p99_ms", "health_stalled_released_max_s"):
        assert result["goals"][key]["value"] == result[key], key
        assert result["goals"][key]["passed"] in (True, False), key

    quantiles = result["quantiles"]
    assert set(quantiles["exponential_view"]) == {"linear", "exponential"}
    assert result["quantile_max_rel_error"] == quantiles["exponential_view"]["linear"]["max_rel_error"]
    assert isinstance(quantiles["classic_view"]["max_rel_error"], NUMBER)


def test_mcp_benchmark_reports_its_keys(run_bench: BenchRunner) -> None:
    keys = [
        "mcp_tool_call_ratio",
        "mcp_tool_call_ratio_floor",
        "mcp_tool_call_ratio_vs_floor",
        "mcp_tool_call_ratio_vs_floor_otlp",
        "mcp_tool_call_ratio_without_mcp_layer",
        "mcp_tool_call_ratio_logs_warning",
        "mcp_tool_call_ratio_cde_otel_mcp",
        "mcp_server_cpu_ratio",
        "mcp_server_cpu_ratio_floor",
        "mcp_added_cpu_vs_floor",
        "mcp_server_cpu_ratio_otlp",
        "mcp_server_cpu_ratio_floor_otlp",
        "mcp_added_cpu_vs_floor_otlp",
    ]
    result = run_bench("mcp", keys)
    for key in keys:
        assert result[key] > 0, key  # a number (run_bench)
    mcp = result["mcp"]
    servers = {"off", "on", "floor", "on_otlp", "floor_otlp", "on_without_mcp", "on_logs_warning"}
    servers |= {"on_2", "floor_2", "on_otlp_2", "floor_otlp_2"}  # a second process of each compared variant
    assert set(mcp["median_round_trip_ms"]) == servers
    assert all(isinstance(v, NUMBER) and v > 0 for v in mcp["median_round_trip_ms"].values())
    assert set(result["mcp_tool_call_ratio_per_process"]) == {"on", "on_2", "floor", "floor_2"}
    assert isinstance(mcp["round_order_seed"], int)
    cpu = mcp["server_cpu_ms_per_call"]
    assert set(cpu) == servers
    main_thread = mcp["server_main_thread_cpu_ms_per_call"]
    assert set(main_thread) == servers
    # Part of the process: each server's main thread used some CPU, and no more than the process,
    # give or take what truncating utime and stime to clock ticks in four readings can add (< 4 ticks).
    ticks = 3 * 1000 / os.sysconf("SC_CLK_TCK") / mcp["timed_calls_per_server"]
    assert all(0 < main_thread[name] <= cpu[name] + ticks for name in servers), (main_thread, cpu)
    # From the per-call CPU reported beside them (rounded to µs there, hence approx): each variant
    # with files is the mean of its two processes.
    ours, floor = (cpu["on"] + cpu["on_2"]) / 2, (cpu["floor"] + cpu["floor_2"]) / 2
    assert result["mcp_server_cpu_ratio"] == pytest.approx(ours / cpu["off"], rel=0.01)
    added = (ours - cpu["off"]) / (floor - cpu["off"])
    assert result["mcp_added_cpu_vs_floor"] == pytest.approx(added, rel=0.01)
    # The same of the main threads, unless the floor's added nothing measurable in a quick run (NaN).
    for suffix in ("", "_otlp"):
        ours_main, floor_main = (
            (main_thread[variant + suffix] + main_thread[variant + suffix + "_2"]) / 2 for variant in ("on", "floor")
        )
        reported, floor_added = result["mcp_added_main_thread_cpu_vs_floor" + suffix], floor_main - main_thread["off"]
        if floor_added >= 0.1:  # far enough from the per-server rounding to recompute
            expected = (ours_main - main_thread["off"]) / floor_added
            assert reported == pytest.approx(expected, rel=0.05), suffix
        elif floor_added < -0.002:
            assert math.isnan(reported), suffix
    # The floor emitted exactly what we emitted (items and their attributes), in both export modes,
    # and something was emitted.
    emitted = mcp["emitted"]
    assert emitted["on"] == emitted["floor"] == emitted["on_2"] == emitted["floor_2"]
    assert emitted["on_otlp"] == emitted["floor_otlp"] == emitted["on_otlp_2"] == emitted["floor_otlp_2"]
    assert emitted["on"]["span_attributes"] > 3 * emitted["on"]["spans"] and emitted["on"]["log_attributes"] > 0
    assert (
        min(emitted["on"]["spans"], emitted["on"]["logs"], emitted["on_otlp"]["spans"]) > mcp["timed_calls_per_server"]
    )
    assert len(mcp["load_average"]["start"]) == 3
    assert isinstance(mcp["mcp_layer_owned_us"], NUMBER)
    # Every server accounted its collections over the timed calls, and their CPU time is part of the
    # server's. A quick run's few calls on small projects may run no young collection in a server
    # (one starts after 700 net allocations), so none is required of each; the servers together ran some.
    collections, gc_ms = mcp["server_gc_collections"], mcp["server_gc_ms_per_call"]
    assert set(gc_ms) == set(collections) == servers
    assert all(len(counts) == 3 and all(n >= 0 for n in counts) for counts in collections.values())
    assert sum(counts[0] for counts in collections.values()) > 0
    assert all(0 <= gc_ms[name] < cpu[name] + ticks for name in servers)
    assert all(gc_ms[name] == 0 for name in servers if sum(collections[name]) == 0)


def test_the_collectors_time_per_call_counts_only_the_timed_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "bench"))
    bench_mcp = importlib.import_module("bench_mcp")
    account = tmp_path / "on.gc.json"
    calls = [1.0, 2.0, 10.0, 11.0, 12.0, 13.0]  # two warm-up calls, then four timed ones
    collections = [
        [2, 1.5, 70.0],  # during the warm-up: not counted
        [0, 10.5, 0.2],
        [1, 11.5, 0.6],
        [0, 12.5, 0.2],
        [2, 12.9, 80.0],
        [2, 14.0, 90.0],  # after the last call (the server's exit): not counted
    ]
    account.write_text(json.dumps({"calls": calls, "collections": collections}))
    assert bench_mcp.gc_per_call(account, 2) == {"ms_per_call": 20.25, "collections": [2, 1, 1]}
    with pytest.raises(ValueError, match="no timed call"):
        bench_mcp.gc_per_call(account, 6)
    assert bench_mcp.gc_per_call(tmp_path / "killed.gc.json", 2) == {"ms_per_call": None, "collections": None}


def test_the_mcp_benchmark_refuses_a_failed_or_wrong_tool_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that answers errors must fail the benchmark, not look cheap."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "bench"))
    bench_mcp = importlib.import_module("bench_mcp")

    def result(text: str, *, error: bool = False) -> SimpleNamespace:
        return SimpleNamespace(content=[SimpleNamespace(text=text)], is_error=error)

    assert bench_mcp._answer(result('{"status": "ok", "phase": "design"}'), "t") == {"status": "ok", "phase": "design"}
    with pytest.raises(bench_mcp.WrongResult, match="failed"):
        bench_mcp._answer(result("boom", error=True), "t")
    with pytest.raises(bench_mcp.WrongResult, match="answered an error"):
        bench_mcp._answer(result('{"status": "error", "error_code": "E101"}'), "t")

    class Session:
        async def call_tool(self, name: str, args: dict[str, Any]) -> SimpleNamespace:
            if name == "cde_startFeature":
                return result('{"status": "success", "feature_id": "f1"}')
            return result('{"status": "ok", "phase": "define"}')  # never advances

    with pytest.raises(bench_mcp.WrongResult, match="left the feature in 'define'"):
        anyio.run(bench_mcp._fixture_cycle, Session(), "/p", 1)


def test_scrub_and_input_bounds_benchmarks_report_their_keys(run_bench: BenchRunner) -> None:
    keys = [
        "scrub_1kb_us",
        "scrub_1kb_ratio_vs_re_sub",
        "scrub_1kb_hinted_us",
        "core_refusal_max_ms",
        "core_refusal_vs_reading_input_once",
        "mcp_refusal_overhead_ms",
        "mcp_answer_max_bytes",
    ]
    result = run_bench("scrub,input_bounds", keys)  # every key's value a number
    assert result["scrub_1kb_us"] > 0
    assert result["core_refusal_max_ms"] > 0
    assert result["mcp_answer_max_bytes"] > 0  # a refusal answers something, and its size was measured


# -- bench_mcp_instructions: its workload and its arithmetic (Valgrind runs only in the benchmark) --
BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench_instructions() -> object:
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module("bench_mcp_instructions")
    finally:
        sys.path.remove(str(BENCH))


def test_ours_and_the_floor_emit_the_same_for_the_same_in_process_calls(
    venv_python: Callable[[str], Path], bench_instructions: object, tmp_path: Path
) -> None:
    emitted = {}
    for variant in ("on", "floor"):
        own = tmp_path / variant
        own.mkdir()
        env = bench_instructions._env(variant, own, "http://127.0.0.1:9")  # type: ignore[attr-defined]
        done = subprocess.run(
            [str(venv_python("fastmcp_2_13")), str(BENCH / "_inprocess_fixture.py"), variant, "3", "1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert json.loads(done.stdout.splitlines()[-1]) == {"mode": variant, "calls": 9}
        emitted[variant] = bench_instructions.emitted_files(own)  # type: ignore[attr-defined]
    # Every call's spans and records were flushed to files by the end, on both sides, alike.
    assert emitted["on"]["spans"] >= 5 * 12  # five spans a call (warm-up and timed calls)
    assert emitted["on"]["logs"] >= 5 * 12
    assert emitted["on"] == emitted["floor"]


def test_per_call_takes_start_up_out_and_the_ratio_is_added_over_added(bench_instructions: object) -> None:
    per_call = bench_instructions.per_call  # type: ignore[attr-defined]
    # 2 cycles cost 1,000 + 6 calls x 10; 12 cycles 1,000 + 36 calls x 10: 10 a call.
    assert per_call(1_060, 1_360, 12) == 10
    report = bench_instructions.report(  # type: ignore[attr-defined]
        {"off": 10e6, "on": 13e6, "floor": 14e6, "on_otlp": 15e6, "floor_otlp": 14e6}
    )
    assert report["mcp_added_instructions_vs_floor"] == 0.75
    assert report["mcp_added_instructions_vs_floor_otlp"] == 1.25
    assert report["added_instructions_per_call_millions"] == {"on": 3, "floor": 4, "on_otlp": 5, "floor_otlp": 4}


def test_the_in_process_fixture_waits_at_its_marks_when_asked(venv_python: Callable[[str], Path]) -> None:
    fixture = subprocess.Popen(
        [str(venv_python("fastmcp_2_13")), str(BENCH / "_inprocess_fixture.py"), "off", "2", "1", "--pause"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert fixture.stdin is not None and fixture.stdout is not None
        assert fixture.stdout.readline().strip() == "warm"
        fixture.stdin.write("\n")
        fixture.stdin.flush()
        assert fixture.stdout.readline().strip() == "timed"
        fixture.stdin.write("\n")
        fixture.stdin.flush()
        assert json.loads(fixture.stdout.readline()) == {"mode": "off", "calls": 6}
        assert fixture.wait(60) == 0
    finally:
        fixture.kill()


def test_per_thread_counts_are_read_from_callgrind_control_and_the_main_thread_compared(
    bench_instructions: object,
) -> None:
    answer = (
        "PID 22166: python _inprocess_fixture.py on 20 5 --pause\n\n"
        "  Totals:           Ir \n   Th 1  5,658,645,215 \n   Th 2        766,545 \n   Th 5     55,214,466 \n\n"
        "  Frame:              Ir Backtrace for Thread 1\n   [ 0]          130,792 read (3800 x)\n"
    )
    assert bench_instructions.thread_events(answer) == {  # type: ignore[attr-defined]
        1: {"Ir": 5_658_645_215}, 2: {"Ir": 766_545}, 5: {"Ir": 55_214_466}
    }  # fmt: skip
    with pytest.raises(RuntimeError):
        bench_instructions.thread_events("PID 1: no such run")  # type: ignore[attr-defined]
    report = bench_instructions.thread_report(  # type: ignore[attr-defined]
        {
            "off": {1: 10e6},
            "on": {1: 12e6, 2: 1e6, 5: 2e6},
            "floor": {1: 14e6, 2: 1e6},
            "on_otlp": {1: 13e6, 5: 2e6},
            "floor_otlp": {1: 14e6},
        }
    )
    assert report["mcp_added_main_thread_instructions_vs_floor"] == 0.5
    assert report["mcp_added_main_thread_instructions_vs_floor_otlp"] == 0.75
    assert report["other_threads_instructions_per_call_millions"] == {
        "off": 0, "on": 3, "floor": 1, "on_otlp": 2, "floor_otlp": 0
    }  # fmt: skip


def test_simulated_l2_misses_are_read_per_thread_and_compared_like_instructions(bench_instructions: object) -> None:
    answer = (
        "  Totals:    Ir      Dr  Dw  I1mr  D1mr  D1mw  ILmr  DLmr  DLmw \n"
        "   Th 1  9,000  4,000  2,000  300  100  30  7  17  5 \n   Th 3  500  200  100  10  8  2  0  1  0 \n\n"
        "  Frame:  Ir  Dr Backtrace for Thread 1\n"
    )
    events = bench_instructions.thread_events(answer)  # type: ignore[attr-defined]
    assert events[1] == {
        "Ir": 9000, "Dr": 4000, "Dw": 2000, "I1mr": 300, "D1mr": 100, "D1mw": 30, "ILmr": 7, "DLmr": 17, "DLmw": 5
    }  # fmt: skip
    assert sum(events[3][name] for name in bench_instructions.L2_MISSES) == 1  # type: ignore[attr-defined]
    report = bench_instructions.thread_report(  # type: ignore[attr-defined]
        {"off": {1: 10e3}, "on": {1: 13e3, 2: 2e3}, "floor": {1: 14e3}, "on_otlp": {1: 12e3}, "floor_otlp": {1: 12e3}},
        "l2_misses",
        ("thousands", 1e3),
    )
    assert report["mcp_added_main_thread_l2_misses_vs_floor"] == 0.75
    assert report["mcp_added_main_thread_l2_misses_vs_floor_otlp"] == 1.0
    assert report["other_threads_l2_misses_per_call_thousands"]["on"] == 2


def test_the_simulated_l2_is_the_one_sysfs_describes(bench_instructions: object, tmp_path: Path) -> None:
    def cache(index: str, level: str, kind: str, size: str, ways: str) -> None:
        directory = tmp_path / index
        directory.mkdir()
        for name, value in (("level", level), ("type", kind), ("size", size)):
            (directory / name).write_text(value + "\n")
        (directory / "ways_of_associativity").write_text(ways + "\n")
        (directory / "coherency_line_size").write_text("64\n")

    l2_cache = bench_instructions.l2_cache  # type: ignore[attr-defined]
    assert l2_cache(tmp_path) == (1 << 20, 8, 64)  # nothing said: a common L2
    cache("index0", "1", "Data", "48K", "12")
    cache("index1", "1", "Instruction", "32K", "8")
    cache("index2", "2", "Unified", "2048K", "16")
    cache("index3", "3", "Unified", "32768K", "16")
    assert l2_cache(tmp_path) == (2 << 20, 16, 64)


def test_without_valgrind_the_benchmark_says_so(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # no valgrind on it
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_mcp_instructions.py")], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
    assert "valgrind is not installed" in done.stderr
