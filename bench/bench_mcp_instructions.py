"""Benchmark: the instructions a tool call costs with telemetry on / off and the floor, counted by Valgrind.

    .venv/bin/python bench/bench_mcp_instructions.py [--cycles 20]       (needs ``valgrind``; ~5 min)

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
What this cannot see: cache misses, the interpreter lock and garbage collection's timing - CPU time
(``bench_mcp``) stays the goal's measure.

Reports instructions per call for each variant, ``mcp_added_instructions_vs_floor`` (files) and
``mcp_added_instructions_vs_floor_otlp``: (on - off) / (floor - off).
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


def count(python: Path, variant: str, cycles: int, own: Path, endpoint: str) -> int:
    """Instructions of one process of ``variant`` running ``cycles`` cycles after the warm-up (its
    files, if any, in ``own``)."""
    mode = variant.removesuffix("_otlp")
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            str(python),
            str(BENCH / "_inprocess_fixture.py"),
            mode,
            str(cycles),
            str(_WARM),
        ],
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
    options = parser.parse_args()
    if options.cycles <= _SHORT_CYCLES:
        parser.error(f"--cycles must be above {_SHORT_CYCLES}")
    if shutil.which("valgrind") is None:
        sys.exit("bench_mcp_instructions: valgrind is not installed (apt-get install valgrind)")
    python = venv_python("fastmcp_2_13")
    with tempfile.TemporaryDirectory(prefix="cde-otel-instructions-") as tmp:
        work = Path(tmp)
        with Collector(work) as collector:
            runs = [(variant, cycles) for variant in VARIANTS for cycles in (_SHORT_CYCLES, options.cycles)]
            dirs = {run: work / f"{run[0]}-{run[1]}" for run in runs}
            for directory in dirs.values():
                directory.mkdir()
            with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
                counted = list(pool.map(lambda r: count(python, r[0], r[1], dirs[r], collector.endpoint), runs))
            # The floor must emit what we emit, or the comparison means nothing.
            ours, floor = (emitted_files(dirs[name, options.cycles]) for name in ("on", "floor"))
            if ours != floor or not ours.get("spans"):
                sys.exit(f"bench_mcp_instructions: the floor emitted {floor}, ours {ours}")
    totals = dict(zip(runs, counted, strict=True))
    per_variant = {
        variant: per_call(totals[variant, _SHORT_CYCLES], totals[variant, options.cycles], options.cycles)
        for variant in VARIANTS
    }
    print(json.dumps({**report(per_variant), "cycles": options.cycles, "emitted_each": ours}, indent=2))


if __name__ == "__main__":
    main()
