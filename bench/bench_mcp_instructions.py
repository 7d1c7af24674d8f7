"""Benchmark: the instructions a tool call costs with telemetry on / off and the floor, counted by Valgrind.

    .venv/bin/python bench/bench_mcp_instructions.py [--cycles 20] [--threads [--misses]]   (needs ``valgrind``; ~5 min)

``bench_mcp`` measures CPU time, which on a shared machine moves with the neighbours: a whole run
can come out 50 % slower than the one before, and two processes of the same code differ by several
per cent, so a difference of a few per cent between us and the floor takes many runs to see.
Instructions do not move: this counts them with Valgrind's ``callgrind`` (every thread of the
process), for the same workload ``bench_mcp`` drives - the orchestrator fixture with upstream's
per-call logging, or the floor's hand-written instrumentation - served in one process to fastmcp's
in-memory client (``_inprocess_fixture``): ``off``, ``on`` (the embedded default's files),
``floor`` (stock OTLP-JSON files), ``on_otlp`` and ``floor_otlp`` (OTLP/HTTP to the real Collector).

Per call = (a run of warm-up + ``--cycles`` cycles - a run of warm-up + 2 cycles) / the calls between:
start-up, imports and warm-up cancel out. Both sides export only at the final flush (schedules of
600 s, standard variables), so what is counted is each item's cost - creation, processing, encoding,
sending - and not how often a timer fired while Valgrind ran the process 50 times slower.
What this cannot see: real cache misses (``--misses`` simulates one cache), the interpreter lock and
garbage collection's timing - CPU time (``bench_mcp``) stays the goal's measure.

Reports instructions per call for each variant, ``mcp_added_instructions_vs_floor`` (files) and
``mcp_added_instructions_vs_floor_otlp``: (on - off) / (floor - off).

``--threads`` splits them by thread instead, over the timed cycles alone (one run per variant,
``callgrind_control`` reading each thread's count at the fixture's marks, ``--pause``): the main
thread, which serves the requests, and the others - before the final flush, so without the export:
``mcp_added_main_thread_instructions_vs_floor`` (and ``_otlp``) is what we add where requests wait.

``--threads --misses`` also simulates one core's L2 cache (its size, ways and line from sysfs, as
Valgrind's last level; the real last level is shared with every neighbour) and counts its misses -
instruction reads, data reads and writes - per call and thread: ``mcp_added_main_thread_l2_misses_vs_floor``
(and ``_otlp``). Instructions that miss it cost many times those that hit, so this is where the same
instruction count can cost more CPU time. Valgrind's model, not the hardware's: a guide, not a measure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _mcp_servers import Collector, clean_env, emitted_files, venv_python

BENCH = Path(__file__).resolve().parent
_SHORT_CYCLES = 2
_WARM = 5
_SCHEDULE_MS = "600000"  # every export waits for the final flush, on both sides
VARIANTS = ("off", "on", "floor", "on_otlp", "floor_otlp")
_COLLECTED = re.compile(r"Collected : (\d+)")


def _env(variant: str, own: Path, endpoint: str) -> dict[str, str]:
    env = clean_env(
        PYTHONHASHSEED="0",  # the same dict layouts run to run
        OTEL_BSP_SCHEDULE_DELAY=_SCHEDULE_MS,
        OTEL_BLRP_SCHEDULE_DELAY=_SCHEDULE_MS,
        OTEL_METRIC_EXPORT_INTERVAL=_SCHEDULE_MS,
        CDE_OTEL_STARTUP_LINE="false",
    )
    if variant.startswith("on"):
        env.update(CDE_OTEL_ENABLED="true", CDE_OTEL_LOCAL_DIR=str(own))
    elif variant.startswith("floor"):
        env["CDE_FLOOR_DIR"] = str(own)
    if variant.endswith("_otlp"):
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    return env


def _under_callgrind(
    python: Path, variant: str, cycles: int, *options: str, valgrind: tuple[str, ...] = ()
) -> list[str]:
    """The in-process fixture for ``variant``, ``cycles`` cycles after the warm-up, under callgrind
    (with the ``valgrind`` options given)."""
    fixture = [str(BENCH / "_inprocess_fixture.py"), variant.removesuffix("_otlp"), str(cycles), str(_WARM), *options]
    return ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *valgrind, str(python), *fixture]


#: What misses one core's L2 (Valgrind's last level here): instruction reads, data reads, data writes.
L2_MISSES = ("ILmr", "DLmr", "DLmw")
_SIZE = re.compile(r"^(\d+)([KMG]?)$")


def l2_cache(cache_dir: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> tuple[int, int, int]:
    """One core's L2 cache as (bytes, ways, line bytes), from sysfs; 1 MiB, 8 ways, 64 B when it says nothing."""
    for index in sorted(cache_dir.glob("index*")):
        try:
            if (index / "level").read_text().strip() != "2" or (index / "type").read_text().strip() == "Instruction":
                continue
            found = _SIZE.match((index / "size").read_text().strip())
            if found is None:
                continue
            size = int(found.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[found.group(2)]
            ways = int((index / "ways_of_associativity").read_text())
            line = int((index / "coherency_line_size").read_text())
        except (OSError, ValueError):
            continue
        return size, ways, line
    return 1 << 20, 8, 64


def _cache_options(cache: tuple[int, int, int] | None) -> tuple[str, ...]:
    """Valgrind's options to simulate ``cache`` (bytes, ways, line bytes) as its last level; none for None."""
    if cache is None:
        return ()
    size, ways, line = cache
    return ("--cache-sim=yes", f"--LL={size},{ways},{line}")


def count(python: Path, variant: str, cycles: int, own: Path, endpoint: str) -> int:
    """Instructions of one process of ``variant`` running ``cycles`` cycles after the warm-up (its
    files, if any, in ``own``)."""
    done = subprocess.run(
        _under_callgrind(python, variant, cycles),
        env=_env(variant, own, endpoint),
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None or '"calls"' not in done.stdout:
        raise RuntimeError(f"{variant} ({cycles} cycles) failed: {done.stderr[-2000:]}")
    return int(found.group(1))


_THREAD_ROW = re.compile(r"^\s*Th\s+(\d+)((?:\s+[\d,]+)+)\s*$", re.MULTILINE)


def thread_events(control_output: str) -> dict[int, dict[str, int]]:
    """Every event so far per thread (callgrind's numbers, 1 the main thread; ``Ir`` its instructions),
    from the totals that ``callgrind_control -e -b`` prints."""
    totals = control_output.partition("Totals:")[2].partition("Frame:")[0]
    header, _, rows = totals.partition("\n")
    names = header.split()
    found = {
        int(thread): dict(zip(names, (int(count.replace(",", "")) for count in counts.split()), strict=True))
        for thread, counts in _THREAD_ROW.findall(rows)
    }
    if not found or not names:
        raise RuntimeError(f"no thread totals in callgrind_control's answer: {control_output[-2000:]}")
    return found


def count_threads(
    python: Path, variant: str, cycles: int, own: Path, endpoint: str, *, cache: tuple[int, int, int] | None = None
) -> dict[int, dict[str, float]]:
    """Events per call and thread of ``variant`` over its ``cycles`` timed cycles, up to the final flush:
    instructions (``Ir``), and with a ``cache`` (:func:`l2_cache`) its simulated misses (:data:`L2_MISSES`)."""
    command = _under_callgrind(python, variant, cycles, "--pause", valgrind=_cache_options(cache))
    with (own / "stderr.txt").open("w") as errors:  # a file: a full pipe would stall the fixture
        env, pipe = _env(variant, own, endpoint), subprocess.PIPE
        process = subprocess.Popen(command, env=env, stdin=pipe, stdout=pipe, stderr=errors, text=True)
        try:
            readings = [_totals_at(process, mark) for mark in ("warm", "timed")]
            out, _ = process.communicate(timeout=1800)
        finally:
            if process.poll() is None:
                process.kill()
    if process.returncode != 0 or '"calls"' not in out:
        raise RuntimeError(f"{variant} failed: {(own / 'stderr.txt').read_text()[-2000:]}")
    before, after = readings
    return {
        thread: {name: (count - before.get(thread, {}).get(name, 0)) / (cycles * 3) for name, count in events.items()}
        for thread, events in after.items()
    }


def _totals_at(process: subprocess.Popen[str], mark: str) -> dict[int, dict[str, int]]:
    """Waits for the fixture's ``mark``, reads every thread's count, and lets the fixture go on."""
    assert process.stdout is not None and process.stdin is not None
    while (line := process.stdout.readline()) and line.strip() != mark:
        pass
    if not line:
        raise RuntimeError(f"the fixture ended before its {mark!r} mark")
    control = ["callgrind_control", "-e", "-b", str(process.pid)]
    totals = thread_events(subprocess.run(control, capture_output=True, text=True, timeout=300, check=False).stdout)
    process.stdin.write("\n")
    process.stdin.flush()
    return totals


def thread_report(
    per_variant: dict[str, dict[int, float]], what: str = "instructions", unit: tuple[str, float] = ("millions", 1e6)
) -> dict[str, object]:
    """``what`` per call on the main thread and the others, and ours added over the floor's on the main thread."""
    main = {name: threads.get(1, 0.0) for name, threads in per_variant.items()}
    others = {name: sum(v for thread, v in threads.items() if thread != 1) for name, threads in per_variant.items()}
    off = main["off"]
    name, scale = unit
    return {
        f"mcp_added_main_thread_{what}_vs_floor": round((main["on"] - off) / (main["floor"] - off), 3),
        f"mcp_added_main_thread_{what}_vs_floor_otlp": round((main["on_otlp"] - off) / (main["floor_otlp"] - off), 3),
        f"main_thread_{what}_per_call_{name}": {variant: round(v / scale, 3) for variant, v in main.items()},
        f"other_threads_{what}_per_call_{name}": {variant: round(v / scale, 3) for variant, v in others.items()},
    }


def per_call(short: int, long: int, cycles: int) -> float:
    """Instructions per call between a short and a long run (start-up and warm-up cancel out)."""
    return (long - short) / ((cycles - _SHORT_CYCLES) * 3)


def report(per_variant: dict[str, float]) -> dict[str, object]:
    off = per_variant["off"]
    added = {name: per_variant[name] - off for name in VARIANTS if name != "off"}
    return {
        "mcp_added_instructions_vs_floor": round(added["on"] / added["floor"], 3),
        "mcp_added_instructions_vs_floor_otlp": round(added["on_otlp"] / added["floor_otlp"], 3),
        "instructions_per_call_millions": {name: round(value / 1e6, 3) for name, value in per_variant.items()},
        "added_instructions_per_call_millions": {name: round(value / 1e6, 3) for name, value in added.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cycles", type=int, default=20, help="cycles (3 calls) of the long run")
    parser.add_argument("--threads", action="store_true", help="per thread, over the timed cycles (no export)")
    parser.add_argument("--misses", action="store_true", help="with --threads: misses of a simulated L2 cache too")
    options = parser.parse_args()
    if options.cycles <= _SHORT_CYCLES:
        parser.error(f"--cycles must be above {_SHORT_CYCLES}")
    if options.misses and not options.threads:
        parser.error("--misses goes with --threads")
    if shutil.which("valgrind") is None:
        sys.exit("bench_mcp_instructions: valgrind is not installed (apt-get install valgrind)")
    python = venv_python("fastmcp_2_13")
    with tempfile.TemporaryDirectory(prefix="cde-otel-instructions-") as tmp:
        work = Path(tmp)
        with Collector(work) as collector:
            if options.threads:
                print(
                    json.dumps(_by_thread(python, work, collector.endpoint, options.cycles, options.misses), indent=2)
                )
                return
            runs = [(variant, cycles) for variant in VARIANTS for cycles in (_SHORT_CYCLES, options.cycles)]
            dirs = {run: work / f"{run[0]}-{run[1]}" for run in runs}
            for directory in dirs.values():
                directory.mkdir()
            with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
                counted = list(pool.map(lambda r: count(python, r[0], r[1], dirs[r], collector.endpoint), runs))
            ours = _same_output(dirs["on", options.cycles], dirs["floor", options.cycles])
    totals = dict(zip(runs, counted, strict=True))
    per_variant = {
        variant: per_call(totals[variant, _SHORT_CYCLES], totals[variant, options.cycles], options.cycles)
        for variant in VARIANTS
    }
    print(json.dumps({**report(per_variant), "cycles": options.cycles, "emitted_each": ours}, indent=2))


def _by_thread(python: Path, work: Path, endpoint: str, cycles: int, misses: bool) -> dict[str, object]:
    dirs = {variant: work / f"{variant}-threads" for variant in VARIANTS}
    for directory in dirs.values():
        directory.mkdir()
    cache = l2_cache() if misses else None
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counted = list(pool.map(lambda v: count_threads(python, v, cycles, dirs[v], endpoint, cache=cache), VARIANTS))
    ours = _same_output(dirs["on"], dirs["floor"])
    per_variant = dict(zip(VARIANTS, counted, strict=True))
    report = thread_report({v: {t: e["Ir"] for t, e in threads.items()} for v, threads in per_variant.items()})
    if cache is not None:
        l2 = {v: {t: sum(e[m] for m in L2_MISSES) for t, e in threads.items()} for v, threads in per_variant.items()}
        size, ways, line = cache
        report |= thread_report(l2, "l2_misses", ("thousands", 1e3))
        report["l2_simulated"] = {"bytes": size, "ways": ways, "line_bytes": line}
    return {**report, "cycles": cycles, "emitted_each": ours}


def _same_output(ours_dir: Path, floor_dir: Path) -> dict[str, int]:
    """What each wrote; exits unless the floor emitted what we emitted (or the comparison means nothing)."""
    ours, floor = emitted_files(ours_dir), emitted_files(floor_dir)
    if ours != floor or not ours.get("spans"):
        sys.exit(f"bench_mcp_instructions: the floor emitted {floor}, ours {ours}")
    return ours


if __name__ == "__main__":
    main()
