"""Benchmark: how long a process takes to exit after its work ends, with the collector unreachable.

    .venv/bin/python bench/bench_shutdown.py [--quick]

Goal: within ``CDE_OTEL_SHUTDOWN_TIMEOUT_S`` (2 s) of the work ending. Each run is a
real process turned on the user's way (``CDE_OTEL_ENABLED=true``, the .pth start-up) with
``OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9`` (nothing listens: connections refused) or a
loopback socket that accepts connections and never answers. The work is 200 instrumented
operations and 0.2 s in all; the script prints the wall clock when it ends, and the time is
taken when the parent sees the process exit (interpreter teardown included). Reported: the
median and the worst run, and a run with telemetry off as the floor of teardown itself.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _cli import print_measurement

APP = """
import sys, time
started = time.monotonic()
from cde_otel.core import Project, ProjectStatus
project = Project(name="guest", path="/nonexistent/guest")
project.status = ProjectStatus.ACTIVE
for _ in range(100):
    project.transition_status(ProjectStatus.ARCHIVED)
    project.transition_status(ProjectStatus.ACTIVE)
while time.monotonic() - started < 0.2:
    time.sleep(0.01)
print(f"WORK_END {time.time():.6f}", flush=True)
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDE_OTEL_", "OTEL_", "TRACEPARENT", "BAGGAGE"))}
    env.update(extra)
    return env


def _after_work(script: Path, env: dict[str, str]) -> tuple[float, str]:
    proc = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    exited = time.time()
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {proc.stderr[-2000:]}")
    work_end = float(next(line for line in proc.stdout.splitlines() if line.startswith("WORK_END")).split()[1])
    return exited - work_end, proc.stderr


def measure_shutdown(*, quick: bool = False) -> dict[str, Any]:
    runs = 2 if quick else 5
    work = Path(tempfile.mkdtemp(prefix="cde-otel-bench-shutdown-"))
    script = work / "app.py"
    script.write_text(APP)
    result: dict[str, Any] = {"budget_s": 2.0, "runs": runs}
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        collectors = {
            "refused": "http://127.0.0.1:9",
            "silent": f"http://127.0.0.1:{silent.getsockname()[1]}",
        }
        for name, endpoint in collectors.items():
            times, warnings = [], 0
            for _ in range(runs):
                env = _env(CDE_OTEL_ENABLED="true", OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, CDE_OTEL_LOCAL_DIR=str(work))
                seconds, stderr = _after_work(script, env)
                times.append(seconds)
                warnings += sum("could not be sent" in line for line in stderr.splitlines())
            result[name] = {
                "median_s": round(statistics.median(times), 3),
                "max_s": round(max(times), 3),
                "warnings_per_run": warnings / runs,
            }
    off = [_after_work(script, _env())[0] for _ in range(runs)]
    result["telemetry_off"] = {"median_s": round(statistics.median(off), 3), "max_s": round(max(off), 3)}
    return {
        "shutdown_after_work_s": max(result["refused"]["max_s"], result["silent"]["max_s"]),
        "shutdown": result,
    }


def main(argv: list[str] | None = None) -> int:
    print_measurement(measure_shutdown, __doc__, argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
