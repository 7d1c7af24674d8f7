"""Shared fixtures for the health tests: an SDK MeterProvider with the package's duration views."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from opentelemetry.metrics import Histogram
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from cde_otel.core import FileSystemProjectRepository
from cde_otel.health import DiskReading, HealthMonitor, MemoryReading
from cde_otel.health._probes import MIB
from cde_otel.settings import load_settings
from cde_otel.telemetry._histograms import duration_views


@dataclass
class Recorder:
    provider: MeterProvider
    reader: InMemoryMetricReader
    histogram: Histogram

    def record(self, operation: str, seconds: float, *, error: str | None = None) -> None:
        attributes = {"cde.operation": operation, "cde.outcome": "error" if error else "ok"}
        if error:
            attributes["error.type"] = error
        self.histogram.record(seconds, attributes)


def make_recorder(kind: str = "exponential") -> Recorder:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=duration_views(kind, 750))
    histogram = provider.get_meter("cde_otel").create_histogram("cde.operation.duration", unit="s")
    return Recorder(provider, reader, histogram)


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Host:
    """Injected probe values; tests change them between status calls."""

    free_mb: float = 10_000.0
    cde_bytes: int = 4096
    memory_percent: float = 40.0
    rss_bytes: int = 50 * MIB
    read_only: bool | str = False
    breakers: dict[str, str] = field(default_factory=dict)
    export: str | bool | None = None

    def disk(self, _path: Path) -> DiskReading:
        return DiskReading(free_bytes=int(self.free_mb * MIB), cde_bytes=self.cde_bytes)

    def memory(self) -> MemoryReading:
        return MemoryReading(rss_bytes=self.rss_bytes, system_percent=self.memory_percent)


def make_project(tmp_path: Path, *, features: int = 0) -> Path:
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    repo = FileSystemProjectRepository()
    project = repo.get_or_create(project_dir)
    project.activate()
    for index in range(features):
        project.start_feature(f"feature number {index}")
    repo.save(project)
    return project_dir


def make_monitor(project: Path, host: Host, clock: FakeClock, recorder: Recorder | None = None,
                 **settings: object) -> HealthMonitor:  # fmt: skip
    return HealthMonitor(
        project,
        metric_reader=(recorder or make_recorder()).reader,
        disk_probe=host.disk,
        memory_probe=host.memory,
        settings=load_settings({}, **settings),
        clock=clock,
        breakers=lambda: host.breakers,
        read_only=lambda: host.read_only,
        telemetry_export=lambda: host.export,
    )


def iter_points(recorder: Recorder) -> Iterator[object]:
    data = recorder.reader.get_metrics_data()
    assert data is not None
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == "cde.operation.duration":
                    yield from metric.data.data_points
