"""Bounded shutdown: a dead or silent collector never holds the host's exit hostage.

Real processes (``CDE_OTEL_ENABLED=true``, the .pth start-up) export to a loopback port where
nothing listens (``127.0.0.1:9``) or where a socket listens but never answers. Each script
prints when its work ended. These tests assert behaviour: the process exits by itself (a hang
fails at the 60 s guard), says once what could not be sent and counts it, and honours the budget
setting. How fast it exits (within ``CDE_OTEL_SHUTDOWN_TIMEOUT_S`` of the work ending) is a
wall-clock goal, measured side by side in ``bench/bench_shutdown.py`` (``bench/run.py --only shutdown``).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cde_otel.settings import load_settings
from cde_otel.telemetry._pipeline import build_pipeline

EnvFactory = Callable[..., dict[str, str]]

DEAD_COLLECTOR = "http://127.0.0.1:9"  # discard port: nothing listens, connections are refused
HANG_GUARD_S = 60  # far beyond any budget: reaching it means the exit hangs
# Everything is exported at shutdown, not by the batch processors' timers during the work: on a
# loaded machine the 0.2 s of work can outlast the 1 s log schedule, and an export failing *then*
# logs the SDK's own retry warning (steady state, not what these tests are about).
_NO_SCHEDULED_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "60000", "OTEL_BLRP_SCHEDULE_DELAY": "60000"}

# 0.2 s of work: instrumented operations (spans, histogram points) and the app's own log records
# (bridged to OTel logs), then the end mark.
APP = """
import json, logging, sys, time
started = time.monotonic()
logging.getLogger().addHandler(logging.NullHandler())
logging.getLogger().setLevel(logging.INFO)
log = logging.getLogger("guest.app")
from cde_otel.core import Project, ProjectStatus
project = Project(name="guest", path="/nonexistent/guest")
project.status = ProjectStatus.ACTIVE
for _ in range(100):
    project.transition_status(ProjectStatus.ARCHIVED)
    log.info("archived")
    project.transition_status(ProjectStatus.ACTIVE)
    log.info("active again")
import cde_otel
if not cde_otel.telemetry.is_configured():
    sys.exit("telemetry was not configured")
while time.monotonic() - started < 0.2:
    time.sleep(0.01)
mode = sys.argv[1]
report = None
if mode == "explicit":
    report = cde_otel.shutdown()
    again = cde_otel.shutdown()
    print("REPORT " + json.dumps({"unsent": report.unsent, "completed": report.completed,
                                  "seconds": report.seconds, "again": again}), flush=True)
print(f"WORK_END {time.time():.6f}", flush=True)
"""


def _run(
    clean_env: EnvFactory, tmp_path: Path, mode: str, endpoint: str, **env: str
) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "app.py"
    script.write_text(APP)
    proc = subprocess.Popen(
        [sys.executable, str(script), mode],
        env=clean_env(CDE_OTEL_ENABLED="true", OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, **_NO_SCHEDULED_EXPORT, **env),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = proc.communicate(timeout=HANG_GUARD_S)
    assert any(line.startswith("WORK_END") for line in stdout.splitlines()), stdout + stderr[-3000:]
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def _assert_polite(result: subprocess.CompletedProcess[str], destination: str) -> None:
    assert result.returncode == 0, result.stderr[-3000:]
    for noise in ("Traceback", "Exception ignored", "atexit", "Transient error", "Failed to export"):
        assert noise not in result.stderr, result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if "could not be sent" in line]
    assert len(warnings) == 1, result.stderr[-3000:]
    (warning,) = warnings
    assert warning.startswith("cde-otel: ") and destination in warning
    for what in ("spans", "log records", "metric points"):
        assert what in warning, warning


@pytest.fixture
def silent_collector() -> Iterator[str]:
    """A loopback port that accepts connections (the kernel's backlog) but never answers a request."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_exit_with_an_unreachable_collector_is_polite(clean_env: EnvFactory, tmp_path: Path) -> None:
    result = _run(clean_env, tmp_path, "atexit", DEAD_COLLECTOR)
    _assert_polite(result, DEAD_COLLECTOR)


def test_the_budget_is_a_setting(clean_env: EnvFactory, tmp_path: Path) -> None:
    result = _run(clean_env, tmp_path, "atexit", DEAD_COLLECTOR, CDE_OTEL_SHUTDOWN_TIMEOUT_S="0.5")
    _assert_polite(result, DEAD_COLLECTOR)
    assert "budget 0.5 s" in result.stderr


def test_exit_with_a_collector_that_never_answers_is_polite(
    clean_env: EnvFactory, tmp_path: Path, silent_collector: str
) -> None:
    result = _run(clean_env, tmp_path, "atexit", silent_collector, CDE_OTEL_SHUTDOWN_TIMEOUT_S="0.5")
    _assert_polite(result, silent_collector)


def test_explicit_shutdown_never_raises_counts_every_signal_and_is_idempotent(
    clean_env: EnvFactory, tmp_path: Path
) -> None:
    result = _run(clean_env, tmp_path, "explicit", DEAD_COLLECTOR)
    _assert_polite(result, DEAD_COLLECTOR)  # one warning: the exit hook found nothing left to report
    report = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("REPORT "))[7:])
    assert report["again"] is None  # the second call has nothing to do, and says nothing
    # 200 operations and 200 app records: every span and every log record was attempted (logs
    # flushed too) and counted.
    assert report["unsent"]["traces"] == 200
    assert report["unsent"]["logs"] >= 200  # the app's own records, plus anything else logged
    assert report["unsent"]["metrics"] > 0


def test_demo_exit_code_reflects_its_workload_not_the_export(clean_env: EnvFactory, tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()  # --project takes an existing directory (the demo writes no log file there)
    result = subprocess.run(
        [sys.executable, "-m", "cde_otel", "demo", "--features", "2", "--project", str(tmp_path / "p")],
        env=clean_env(
            OTEL_EXPORTER_OTLP_ENDPOINT=DEAD_COLLECTOR, CDE_OTEL_SHUTDOWN_TIMEOUT_S="0.5", **_NO_SCHEDULED_EXPORT
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "completed 2" in result.stdout + result.stderr or "completed" in result.stdout
    assert "E902" not in result.stdout + result.stderr
    assert sum("could not be sent" in line for line in result.stderr.splitlines()) == 1, result.stderr[-2000:]


def test_providers_have_no_unbounded_exit_hooks_of_their_own(clean_env: EnvFactory, tmp_path: Path) -> None:
    pipeline = build_pipeline(load_settings({"CDE_OTEL_LOCAL_DIR": str(tmp_path)}), {})
    try:
        assert pipeline.tracer_provider._atexit_handler is None
        assert pipeline.meter_provider._atexit_handler is None
        assert pipeline.logger_provider._at_exit_handler is None
    finally:
        from cde_otel.telemetry._pipeline import shutdown_pipeline

        report = shutdown_pipeline(pipeline)
        assert report.completed and report.unsent == {}


def test_a_refusing_collector_is_recognised_at_once_and_a_listening_one_is_not(silent_collector: str) -> None:
    from cde_otel.telemetry._environment import otlp_endpoints as _otlp_endpoints
    from cde_otel.telemetry._shutdown import _refused

    described = {"traces": "otlp (http/protobuf)", "metrics": "otlp (http/protobuf)", "logs": "none"}
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": DEAD_COLLECTOR, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": silent_collector}
    port = int(silent_collector.rsplit(":", 1)[1])
    assert _otlp_endpoints(described, env) == (("127.0.0.1", 9), ("127.0.0.1", port))
    assert _otlp_endpoints({"traces": "console"}, env) == ()
    started = time.monotonic()
    assert _refused((("127.0.0.1", 9),), HANG_GUARD_S)
    assert time.monotonic() - started < HANG_GUARD_S / 2  # recognised without waiting out its timeout
    assert not _refused((("127.0.0.1", 9), ("127.0.0.1", port)), 0.2)  # one of them answers: keep trying
    assert not _refused((), 0.2)
