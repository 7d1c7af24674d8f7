"""Driver programs for the end-to-end suite: configured by environment variables only.

    python workload_driver.py demo PROJECT_DIR DURATIONS_JSON   # demo workload + controlled durations
    python workload_driver.py loop PROJECT_DIR CONTROL_FILE      # runs until CONTROL_FILE says "stop"

Telemetry is switched on by CDE_OTEL_ENABLED=true in the environment; nothing here configures it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import psutil

from cde_otel.core import FileSystemProjectRepository  # importing the core turns telemetry on
from cde_otel.demo_workload import run_workload
from cde_otel.telemetry import correlation, force_flush


def _emit(**fields: object) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def demo(project_dir: str, durations_file: str) -> None:
    import controlled

    from cde_otel.instrumentation import _wrapper

    result = run_workload(project_dir, features=6, seed=11)
    # A service outlives many metric exports; this driver finishes its workload within one, so each
    # error series would reach Prometheus as one sample, and rate() (the dashboard's error panel)
    # needs two. Export now, then run the workload once more in a second project, so every error
    # series rises between two exports, as it does in a long-running server.
    force_flush()
    again = Path(f"{project_dir}-again")
    again.mkdir(exist_ok=True)
    run_workload(str(again), features=6, seed=11)
    clock = controlled.ControlledClock()
    _wrapper.time = clock  # type: ignore[attr-defined,assignment]  # deterministic durations for ControlledOperation.run
    op = controlled.ControlledOperation()
    for duration in json.loads(Path(durations_file).read_text()):
        clock.pending = duration
        op.run(duration)
    _emit(
        completed=result.completed,
        failed=result.failed,
        refused=result.refused,
        project_id=result.project.id,
    )


def loop(project_dir: str, control_file: str) -> None:
    repo = FileSystemProjectRepository()
    project = repo.get_or_create(project_dir)
    if project.status.value != "active":
        project.activate()
    process = psutil.Process()
    iteration = 0
    while True:
        phase = Path(control_file).read_text().strip() or "up1"
        if phase == "stop":
            break
        with correlation(f"outage-{phase}-{iteration}"):
            feature = project.start_feature(f"iteration {iteration}")
            feature.advance_phase("decompose", {"i": iteration})
            repo.save(project)
        iteration += 1
        _emit(iteration=iteration, phase=phase, rss=process.memory_info().rss, feature_id=feature.id)
        time.sleep(0.02)  # a steady, modest rate; the test polls this output with deadlines


if __name__ == "__main__":
    assert os.environ.get("CDE_OTEL_ENABLED") == "true", "the driver must be instrumented by the env var alone"
    {"demo": demo, "loop": loop}[sys.argv[1]](*sys.argv[2:])
