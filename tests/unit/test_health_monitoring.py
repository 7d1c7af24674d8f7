"""HealthMonitor: the seed's acceptance tests (PROD-03) and the check/alert rules."""

from __future__ import annotations

import bisect
import json
import math
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import cde_otel.resilience
from cde_otel import __version__
from cde_otel.core import FileSystemProjectRepository
from cde_otel.health import HealthMonitor, cde_getHealth, get_health_status, register_telemetry, unregister_telemetry
from cde_otel.resilience import CircuitBreaker, breakers
from cde_otel.semconv import CLASSIC_BOUNDARIES_S, METRIC_OPERATION_DURATION
from cde_otel.settings import HistogramKind, load_settings
from cde_otel.testing import CapturedTelemetry, FakeHost, ManualClock, capture_telemetry

MonitorFactory = Callable[..., HealthMonitor]


@pytest.fixture
def project(make_project: Callable[..., Path]) -> Path:
    return make_project(features=3)


def test_health_endpoint_returns_status(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Real probes of this host; thresholds set so the host's own load cannot flip the verdict.
    breaker = CircuitBreaker(name="health-endpoint-test")  # a live, closed breaker the status must list
    monkeypatch.setenv("CDE_OTEL_ALERT_MEMORY_PERCENT", "99.99")
    monkeypatch.setenv("CDE_OTEL_ALERT_DISK_FREE_MB", "0.001")
    monkeypatch.chdir(project)

    health = json.loads(cde_getHealth())

    assert health["status"] == "healthy", health["reasons"]
    assert health["version"] == __version__
    assert health["uptime_seconds"] > 0
    assert health["metrics"]["memory_mb"] > 0
    assert health["metrics"]["disk_mb"] > 0  # .cde holds state.json and a backup
    assert health["metrics"]["disk_free_mb"] > 0
    assert health["metrics"]["active_features"] == 3
    assert health["checks"] == {
        "state_file_writable": True,
        "disk_space": "ok",
        "memory": "ok",
        "read_only": False,
        "circuit_breakers": breakers(),  # every live breaker, as the resilience layer reports them
        "telemetry_export": "disabled",  # nothing registered: telemetry is not configured here
    }
    assert health["checks"]["circuit_breakers"][breaker.name] == "closed"
    assert health["alerts"] == [] and health["alert_history"] == []
    assert get_health_status(str(project))["project_path"] == str(project.resolve())


def test_cde_get_health_reports_a_bad_path_as_coded_json(tmp_path: Path) -> None:
    health = json.loads(cde_getHealth(str(tmp_path / "missing")))

    assert health["status"] == "unhealthy"
    assert health["error"]["code"] == "E001"


def _exact_quantile(sorted_values: list[float], q: float) -> float:
    # The order statistic Prometheus' rank q*n lands on: the ceil(q*n)-th value.
    return sorted_values[max(math.ceil(q * len(sorted_values)) - 1, 0)]


@pytest.mark.parametrize("kind", ["exponential", "classic"])
def test_metrics_calculation_accurate(project: Path, kind: HistogramKind, make_monitor: MonitorFactory) -> None:
    recorder = capture_telemetry(kind)
    rng = random.Random(20251118)
    durations = [rng.lognormvariate(math.log(0.02), 1.2) for _ in range(5000)]
    for index, seconds in enumerate(durations):
        code = "E202" if index % 10 == 0 else None
        recorder.record_operation(
            "FileSystemProjectRepository.save", seconds, error_type="StateError" if code else None, error_code=code
        )
    recorder.record_operation("Project.activate", 0.003)
    monitor = make_monitor(project, recorder)

    stats = monitor.get_status()["metrics"]["operations"]["FileSystemProjectRepository.save"]

    exact = sorted(durations)
    assert stats["count"] == len(durations)
    assert stats["mean"] == pytest.approx(sum(durations) / len(durations), rel=1e-9)
    points = recorder.points(METRIC_OPERATION_DURATION)
    for name, q in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
        expected = _exact_quantile(exact, q)
        if kind == "exponential":
            scale = min(p.scale for p in points)
            ratio = 2 ** (2**-scale)  # one bucket's width as a ratio
            assert scale >= 5
            assert expected / ratio <= stats[name] <= expected * ratio, (name, stats[name], expected)
        else:
            # Same classic bucket (b[i-1], b[i]] as the exact value.
            bucket = bisect.bisect_left(CLASSIC_BOUNDARIES_S, expected)
            lower = CLASSIC_BOUNDARIES_S[bucket - 1] if bucket else 0.0
            assert lower <= stats[name] <= CLASSIC_BOUNDARIES_S[bucket], (name, stats[name], expected)
    single = monitor.get_status()["metrics"]["operations"]["Project.activate"]
    assert single["p50"] == single["p99"] == pytest.approx(0.003)  # clamped to the recorded min/max


def test_error_rate_and_throughput_come_from_the_histogram(
    project: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    recorder = capture_telemetry()
    monitor = make_monitor(project, recorder)
    for index in range(100):
        recorder.record_operation("Project.start_feature", 0.01, error_type="FeatureError" if index < 10 else None)
    clock.advance(10)

    first = monitor.get_status()["metrics"]

    assert first["error_rate"] == pytest.approx(0.10)
    assert first["throughput_ops_per_s"] == pytest.approx(100 / 10)  # first call: total / uptime
    for _ in range(50):
        recorder.record_operation("Project.start_feature", 0.01)
    clock.advance(5)
    second = monitor.get_status()["metrics"]
    assert second["throughput_ops_per_s"] == pytest.approx(50 / 5)  # delta between two collections
    assert second["error_rate"] == pytest.approx(10 / 150)


def test_checks_detect_issues(project: Path, make_monitor: MonitorFactory, host: FakeHost, clock: ManualClock) -> None:
    monitor = make_monitor(project)
    assert monitor.get_status()["status"] == "healthy"

    host.free_mb = 50  # below alert_disk_free_mb=100
    clock.advance(2)  # past the probe cache
    low = monitor.get_status()
    assert low["checks"]["disk_space"] == "warning"
    assert low["status"] == "degraded"
    assert monitor.readiness() == (True, [])

    host.free_mb = 5  # below a tenth of the threshold
    clock.advance(2)
    critical = monitor.get_status()
    assert critical["checks"]["disk_space"] == "critical"
    assert critical["status"] == "unhealthy"
    ready, reasons = monitor.readiness()
    assert not ready and any("disk space critical" in r for r in reasons)

    host.free_mb = 10_000
    host.memory_percent = 85
    clock.advance(2)
    assert monitor.get_status()["checks"]["memory"] == "warning"
    host.memory_percent = 95
    clock.advance(2)
    memory = monitor.get_status()
    assert memory["checks"]["memory"] == "critical" and memory["status"] == "degraded"

    host.memory_percent = 40
    host.read_only = "disk full while saving"
    read_only = monitor.get_status()
    assert read_only["checks"]["read_only"] is True and read_only["status"] == "unhealthy"
    assert monitor.readiness() == (False, ["read-only: disk full while saving"])

    host.read_only = False
    host.breakers = {"state-persistence": "open"}
    host.export = False
    clock.advance(2)
    broken = monitor.get_status()
    assert broken["checks"]["circuit_breakers"] == {"state-persistence": "open"}
    assert broken["checks"]["telemetry_export"] == "failing"
    assert broken["status"] == "degraded"

    host.breakers = {"state-persistence": "closed"}
    host.export = "ok"
    clock.advance(2)
    assert monitor.get_status()["status"] == "healthy"


def test_state_not_writable_makes_the_project_unhealthy(
    project: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    monitor = make_monitor(project)
    assert monitor.get_status()["checks"]["state_file_writable"] is True

    shutil.rmtree(project)  # a real failure: the probe write now fails (even as root)
    clock.advance(2)
    status = monitor.get_status()

    assert status["checks"]["state_file_writable"] is False
    assert status["status"] == "unhealthy"
    ready, reasons = monitor.readiness()
    assert not ready and reasons[0].startswith("state not writable")


def test_a_failing_probe_degrades_instead_of_raising(project: Path, make_monitor: MonitorFactory) -> None:

    def broken_memory() -> object:
        raise OSError("psutil unavailable")

    monitor = make_monitor(project)
    monitor._memory._compute = broken_memory  # type: ignore[assignment]

    status = monitor.get_status()

    assert status["checks"]["memory"] == "unknown"
    assert status["metrics"]["memory_mb"] is None
    assert status["status"] == "degraded"


def test_alert_thresholds_work(project: Path, make_monitor: MonitorFactory, host: FakeHost, clock: ManualClock) -> None:
    recorder = capture_telemetry()
    monitor = make_monitor(project, recorder, alert_p99_s=0.5, alert_error_rate=0.2)
    for _ in range(99):
        recorder.record_operation("Feature.advance_phase", 0.05)
        recorder.record_operation("Project.start_feature", 0.01)
    recorder.record_operation("Feature.advance_phase", 0.9)
    recorder.record_operation("Feature.advance_phase", 0.9)  # 2 of 101 -> P99 in the 0.9 s bucket
    for _ in range(30):
        recorder.record_operation(
            "Project.start_feature", 0.01, error_type="FeatureError", error_code="E101"
        )  # 30 / 230 = 13 % < 20 %

    status = monitor.get_status()

    assert [(a["name"], a.get("operation")) for a in status["alerts"]] == [
        ("CDESlowOperation", "Feature.advance_phase")
    ]
    slow = status["alerts"][0]
    assert slow["threshold"] == 0.5 and slow["value"] > 0.5 and slow["severity"] == "warning"
    assert status["status"] == "degraded"

    for _ in range(40):
        recorder.record_operation(
            "Project.start_feature", 0.01, error_type="FeatureError", error_code="E101"
        )  # 70 / 270 = 26 % > 20 %
    host.free_mb = 99
    host.memory_percent = 81
    clock.advance(2)
    firing = {a["name"]: a for a in monitor.get_status()["alerts"]}
    assert set(firing) == {"CDESlowOperation", "CDEHighErrorRate", "CDEDiskSpaceLow", "CDEMemoryHigh"}
    assert firing["CDEHighErrorRate"]["value"] == pytest.approx(70 / 270)
    assert firing["CDEDiskSpaceLow"]["threshold"] == 100
    assert firing["CDEMemoryHigh"]["value"] == 81

    host.free_mb = 10_000
    host.memory_percent = 40
    clock.advance(2)
    after = monitor.get_status()
    assert {a["name"] for a in after["alerts"]} == {"CDESlowOperation", "CDEHighErrorRate"}
    transitions = [(h["name"], h["state"]) for h in after["alert_history"]]
    assert transitions == [
        ("CDESlowOperation", "firing"),
        ("CDEHighErrorRate", "firing"),
        ("CDEDiskSpaceLow", "firing"),
        ("CDEMemoryHigh", "firing"),
        ("CDEDiskSpaceLow", "resolved"),
        ("CDEMemoryHigh", "resolved"),
    ]
    assert all(h["at"] for h in after["alert_history"])
    since = firing["CDESlowOperation"]["since"]
    assert next(a for a in after["alerts"] if a["name"] == "CDESlowOperation")["since"] == since


def test_default_thresholds_match_the_seed(project: Path, make_monitor: MonitorFactory, host: FakeHost) -> None:
    recorder = capture_telemetry()
    host.free_mb, host.memory_percent = 100.5, 80.0
    monitor = make_monitor(project, recorder)
    for index in range(100):
        # exactly 5 % errors, P99 < 1 s
        recorder.record_operation("Project.archive", 0.99, error_type="ProjectError" if index < 5 else None)

    assert monitor.get_status()["alerts"] == []  # every value sits exactly at (not above) its threshold


def test_defaults_read_the_telemetry_reader_and_resilience_breakers(
    project: Path, monkeypatch: pytest.MonkeyPatch, telemetry: CapturedTelemetry, host: FakeHost
) -> None:
    telemetry.record_operation("Project.activate", 0.002)
    register_telemetry(metric_reader=telemetry.metric_reader, export_status=lambda: "ok")  # what configure() does
    monkeypatch.setattr(cde_otel.resilience, "breakers", lambda: {"state-persistence": "open"})
    monitor = HealthMonitor(project, disk_probe=host.disk, memory_probe=host.memory, settings=load_settings({}))

    try:
        status = monitor.get_status()
    finally:
        unregister_telemetry()

    assert status["metrics"]["operations"]["Project.activate"]["count"] == 1
    assert status["checks"]["telemetry_export"] == "ok"
    assert status["checks"]["circuit_breakers"] == {"state-persistence": "open"}
    assert status["status"] == "degraded"
    assert "circuit breaker state-persistence is open" in status["reasons"]


def test_read_only_comes_from_the_repository_by_default(project: Path, host: FakeHost) -> None:
    class _Repository(FileSystemProjectRepository):
        @property
        def read_only_projects(self) -> dict[str, str]:
            return {str(project.resolve()): "[E210] storage refused the write"}

    monitor = HealthMonitor(
        project, repository=_Repository(), disk_probe=host.disk, memory_probe=host.memory,
        metric_reader=capture_telemetry().metric_reader, settings=load_settings({}),
    )  # fmt: skip

    status = monitor.get_status()

    assert status["checks"]["read_only"] is True and status["status"] == "unhealthy"
    assert monitor.readiness() == (False, ["read-only: [E210] storage refused the write"])
