"""cde_otel.testing does what its docs promise (the first two tests are its documented examples)."""

from __future__ import annotations

import errno
from datetime import timedelta
from pathlib import Path

import pytest

from cde_otel.core import FileSystemProjectRepository
from cde_otel.errors import StateError
from cde_otel.health import HealthMonitor
from cde_otel.instrumentation import CDEInstrumentor
from cde_otel.semconv import ATTR_ERROR_CODE, ATTR_ERROR_TYPE, ATTR_OPERATION, ATTR_OUTCOME, METRIC_OPERATION_DURATION
from cde_otel.settings import load_settings
from cde_otel.testing import (
    FakeHost,
    ManualClock,
    SequentialIdGenerator,
    capture_telemetry,
    metric_points,
    simulate_disk_full,
    simulate_storage_error,
)


def test_a_full_disk_makes_the_project_read_only(tmp_path: Path) -> None:
    clock = ManualClock()
    repo = FileSystemProjectRepository(clock=clock, readonly_probe_s=5)
    with simulate_disk_full():
        project = repo.get_or_create(tmp_path)
    assert project.read_only
    clock.advance(5)  # the next probe is due: no waiting
    assert repo.ensure_writable(project)


def test_operations_are_traced(tmp_path: Path) -> None:
    telemetry = capture_telemetry()  # in-memory providers, trace/span ids 1, 2, 3...
    instrumentor = CDEInstrumentor()
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        FileSystemProjectRepository().get_or_create(tmp_path).activate()
    finally:
        instrumentor.uninstrument()
    assert [s.name for s in telemetry.spans()][-1] == "Project.activate"
    assert telemetry.points(METRIC_OPERATION_DURATION)


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(10.0)
    assert clock() == clock() == 10.0
    clock.advance(timedelta(minutes=1))
    clock.advance(0.5)
    assert clock() == 70.5


def test_sequential_ids_start_at_one() -> None:
    ids = SequentialIdGenerator()
    assert [ids.generate_trace_id(), ids.generate_trace_id()] == [1, 2]
    assert [ids.generate_span_id(), ids.generate_span_id()] == [1, 2]


def test_storage_faults_fail_the_chosen_number_of_writes_then_stop(tmp_path: Path) -> None:
    repo = FileSystemProjectRepository()
    project = repo.get_or_create(tmp_path)
    with simulate_storage_error(errno.EIO, times=1) as fault:
        with pytest.raises(StateError) as caught:
            repo.save(project)
        repo.save(project)  # the second write goes through
    assert fault.failures == 1
    assert caught.value.code == "E201" and caught.value.context["errno"] == "EIO"
    assert repo.get_by_path(tmp_path) == project


def test_metric_points_reads_a_reader_or_collected_data_and_nothing() -> None:
    telemetry = capture_telemetry("classic")
    telemetry.record_operation("Project.activate", 0.25)
    telemetry.record_operation("Project.activate", 0.5, error_type="ProjectError", error_code="E003")

    points = metric_points(telemetry.metric_reader, METRIC_OPERATION_DURATION)
    data = telemetry.metric_reader.get_metrics_data()

    assert sorted(str(p.attributes[ATTR_OUTCOME]) for p in points) == ["error", "ok"]
    assert len(metric_points(data, METRIC_OPERATION_DURATION)) == 2
    assert metric_points(None, METRIC_OPERATION_DURATION) == []
    assert metric_points(data, "no.such.metric") == []


def test_fake_host_readings_reach_the_monitor(tmp_path: Path) -> None:
    host, clock = FakeHost(free_mb=5, breakers={"state_persistence": "open"}, export=False), ManualClock()
    monitor = HealthMonitor(tmp_path, settings=load_settings({}), clock=clock, **host.probes())

    status = monitor.get_status()

    assert status["checks"]["disk_space"] == "critical"
    assert status["checks"]["circuit_breakers"] == {"state_persistence": "open"}
    assert status["checks"]["telemetry_export"] == "failing"
    host.free_mb = 10_000
    clock.advance(2)  # past the monitor's probe cache
    assert monitor.readiness() == (True, [])


def test_record_operation_takes_error_type_and_code_and_the_older_keyword() -> None:
    telemetry = capture_telemetry("classic")
    telemetry.record_operation("Project.activate", 0.5, error_type="ProjectError", error_code="E003")
    telemetry.record_operation("Project.archive", 0.5, error="KeyError")  # the older keyword: error.type
    telemetry.record_operation("Project.pause", 0.5)

    attributes = {
        str(p.attributes[ATTR_OPERATION]): dict(p.attributes or {})
        for p in metric_points(telemetry.metric_reader, METRIC_OPERATION_DURATION)
    }
    assert attributes["Project.activate"] == {
        ATTR_OPERATION: "Project.activate",
        ATTR_OUTCOME: "error",
        ATTR_ERROR_TYPE: "ProjectError",
        ATTR_ERROR_CODE: "E003",
    }
    assert attributes["Project.archive"] == {
        ATTR_OPERATION: "Project.archive",
        ATTR_OUTCOME: "error",
        ATTR_ERROR_TYPE: "KeyError",
    }
    assert attributes["Project.pause"] == {ATTR_OPERATION: "Project.pause", ATTR_OUTCOME: "ok"}
