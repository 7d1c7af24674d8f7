"""The instruction-count benchmark's parts: its workload emits the same on both sides, and its arithmetic.

Valgrind itself runs only in the benchmark (``bench/bench_mcp_instructions.py``): under it one
process takes minutes. What it counts is checked here without it.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

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


def test_without_valgrind_the_benchmark_says_so(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # no valgrind on it
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_mcp_instructions.py")], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
    assert "valgrind is not installed" in done.stderr
