"""``cde.features.active`` comes from the state the repositories load and save, not from live objects.

Servers like the upstream orchestrator load a project per tool call, change it, save it and drop
it: these tests drop every object between steps, as such a server does. In process here, for our
core repository and for the upstream shapes (tests/mcp_fixtures: the async project repository
and the ``FileSystemStateRepository`` state dict); through a real MCP server in
test_mcp_servers.py.
"""

from __future__ import annotations

import asyncio
import enum
import gc
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from cde_otel.core import FileSystemProjectRepository
from cde_otel.instrumentation import CDEInstrumentor, Role, Target
from cde_otel.instrumentation._feature_state import ActiveFeatures, count_active
from cde_otel.semconv import METRIC_FEATURES_ACTIVE
from cde_otel.testing import CapturedTelemetry, capture_telemetry

MCP_FIXTURES = Path(__file__).resolve().parents[1] / "mcp_fixtures"


def active(otel: CapturedTelemetry) -> int:
    [point] = otel.points(METRIC_FEATURES_ACTIVE)
    value: int = point.value
    return value


def _start_feature(path: Path, prompt: str) -> str:
    """One "tool call": load, change, save, drop everything."""
    repo = FileSystemProjectRepository()
    project = repo.get_or_create(path)
    if project.status.value == "onboarding":
        project.activate()
    feature_id = project.start_feature(prompt).id
    repo.save(project)
    return feature_id


def _fail_feature(path: Path, feature_id: str) -> None:
    repo = FileSystemProjectRepository()
    project = repo.get_or_create(path)
    project.get_feature(feature_id).fail("abandoned")
    repo.save(project)


def test_the_core_repository_counts_what_it_saved_with_no_objects_alive(
    otel: CapturedTelemetry, tmp_path: Path
) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir()
    second.mkdir()
    kept = _start_feature(first, "one")
    dropped = _start_feature(first, "two")
    _start_feature(second, "three")
    gc.collect()  # no Project object survives: the count cannot come from memory
    assert active(otel) == 3

    _fail_feature(first, dropped)
    assert active(otel) == 2, "a saved terminal state counts no more"
    assert kept != dropped


def test_a_change_that_was_never_saved_does_not_count(otel: CapturedTelemetry, tmp_path: Path) -> None:
    repo = FileSystemProjectRepository()
    project = repo.get_or_create(tmp_path)
    project.activate()
    project.start_feature("in memory only")
    assert active(otel) == 0
    repo.save(project)
    assert active(otel) == 1


def test_a_state_loaded_from_disk_counts_in_a_process_that_never_saved_it(tmp_path: Path) -> None:
    _start_feature(tmp_path, "written by another process")  # not instrumented: like another process
    telemetry = capture_telemetry()
    CDEInstrumentor().instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider, log_operations=False
    )
    try:
        assert active(telemetry) == 0
        FileSystemProjectRepository().get_by_path(tmp_path)
        assert active(telemetry) == 1
    finally:
        CDEInstrumentor().uninstrument()
        telemetry.shutdown()


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, ModuleType]]:
    """The orchestrator stand-in's modules (upstream's layout), imported after instrument(), unloaded after."""
    monkeypatch.syspath_prepend(str(MCP_FIXTURES))
    assert not [m for m in sys.modules if m.startswith("cde_orchestrator")]
    projects = importlib.import_module("cde_orchestrator.adapters.filesystem_project_repository")
    states = importlib.import_module("cde_orchestrator.adapters.state.filesystem_state_repository")

    try:
        yield {"projects": projects, "states": states}
    finally:
        for name in [m for m in sys.modules if m.startswith("cde_orchestrator")]:
            sys.modules.pop(name)


def test_the_upstream_async_repository_counts_per_project(
    otel: CapturedTelemetry, upstream: dict[str, ModuleType], tmp_path: Path
) -> None:
    repository_class: Any = upstream["projects"].FileSystemProjectRepository

    async def tool_call(path: Path, complete: str | None = None) -> str:
        repository = repository_class()
        project = await repository.get_or_create(str(path))
        project.activate()
        if complete is None:
            feature_id: str = project.start_feature("upstream prompt").id
        else:
            project.get_feature(complete).complete()
            feature_id = complete
        await repository.save(project)
        return feature_id

    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    feature = asyncio.run(tool_call(first))
    asyncio.run(tool_call(first))
    asyncio.run(tool_call(second))
    gc.collect()
    assert active(otel) == 3
    asyncio.run(tool_call(first, complete=feature))
    assert active(otel) == 2


def test_the_upstream_state_dict_counts_from_load_state_and_save_state(
    otel: CapturedTelemetry, upstream: dict[str, ModuleType], tmp_path: Path
) -> None:
    repository_class: Any = upstream["states"].FileSystemStateRepository
    state_file = tmp_path / ".cde" / "state.json"
    repository_class(state_file).save_state(
        {"features": {"f1": {"status": "defining"}, "f2": {"status": "implementing"}, "f3": {"status": "completed"}}}
    )
    assert active(otel) == 2

    repository = repository_class(state_file)  # a later call: a fresh repository loads the state
    state = repository.load_state()
    state["features"]["f1"]["status"] = "failed"
    assert active(otel) == 2, "a change in memory is not the state yet"
    repository.save_state(state)
    assert active(otel) == 1

    state_file.unlink()  # the state is gone: the next load says so
    assert repository_class(state_file).load_state() == {}
    assert active(otel) == 0


def test_a_failed_save_counts_nothing(otel: CapturedTelemetry, upstream: dict[str, ModuleType], tmp_path: Path) -> None:
    repository = upstream["states"].FileSystemStateRepository(tmp_path / "state.json")
    (tmp_path / "state.json").mkdir()  # writing the state file now fails
    with pytest.raises(IsADirectoryError):
        repository.save_state({"features": {"f1": {"status": "defining"}}})
    assert active(otel) == 0


def test_uninstrument_stops_the_gauge_and_the_bookkeeping(tmp_path: Path) -> None:
    telemetry = capture_telemetry()
    CDEInstrumentor().instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider, log_operations=False
    )
    _start_feature(tmp_path, "counted")
    assert active(telemetry) == 1
    CDEInstrumentor().uninstrument()
    _start_feature(tmp_path, "not counted")
    assert telemetry.points(METRIC_FEATURES_ACTIVE) == []


@pytest.mark.parametrize(
    ("features", "expected"),
    [
        (None, 0),
        ({}, 0),
        ({"a": {"status": "defining"}, "b": {"status": "COMPLETED"}, "c": {}}, 2),
        ([{"status": "failed"}, {"status": "reviewing"}], 1),
    ],
)
def test_count_active_reads_mappings_lists_and_dict_features(features: Any, expected: int) -> None:
    assert count_active(features) == expected


def test_each_status_is_judged_once_and_made_up_statuses_stay_bounded() -> None:
    """A workflow's statuses are judged once each (an enum's value is a slow property); a host that
    makes a new status per feature cannot grow the memo without bound."""
    from cde_otel.instrumentation import _feature_state

    class Status(enum.StrEnum):
        ACTIVE = "active"
        DONE = "Completed"

    features = [SimpleNamespace(status=Status.ACTIVE), SimpleNamespace(status=Status.DONE)] * 3
    assert count_active(features) == 3
    assert _feature_state._TERMINAL_BY_STATUS[Status.DONE] is True
    assert _feature_state._TERMINAL_BY_STATUS[Status.ACTIVE] is False
    made_up = [SimpleNamespace(status=f"custom-{n}") for n in range(3 * _feature_state._MAX_STATUSES)]
    assert count_active(made_up) == len(made_up)
    assert len(_feature_state._TERMINAL_BY_STATUS) <= _feature_state._MAX_STATUSES
    assert count_active([SimpleNamespace(status=["unhashable", "completed"])]) == 1  # judged, not memoised


class _Project:
    def __init__(self) -> None:
        self.id = "p-busy"
        self.features: dict[str, object] = {}


class _FeatureStartedMeanwhile:
    """Reading its status adds a feature to the project: what another thread does while the reader counts."""

    def __init__(self, project: _Project) -> None:
        self.project = project

    @property
    def status(self) -> str:
        self.project.features[f"f{len(self.project.features)}"] = object()
        return "defining"


def test_active_features_are_counted_from_a_snapshot() -> None:
    project = _Project()
    project.features["f0"] = _FeatureStartedMeanwhile(project)
    assert count_active(project.features) == 1  # not "dictionary changed size during iteration"
    assert len(project.features) == 2


class _ReadCounted:
    """A feature that counts how often its status is read."""

    reads = 0

    def __init__(self, status: str) -> None:
        self._status = status

    @property
    def status(self) -> str:
        _ReadCounted.reads += 1
        return self._status


class _Loaded:
    def __init__(self, features: list[_ReadCounted]) -> None:
        self.id, self.path, self.features = "p1", "/p1", features


class _Store:
    def __init__(self) -> None:
        self.path = "p"

    def load(self) -> None: ...

    def save(self) -> None: ...


def test_a_save_of_what_was_loaded_reads_only_the_change() -> None:
    """The bookkeeping is incremental: a project of 300 features loaded, one added, saved - the save
    reads one status, not 301; a settled feature makes the next count a full one."""
    features = ActiveFeatures()
    load, save = Target("m", "Store", "load", Role.STORE), Target("m", "Store", "save", Role.STORE)
    project = _Loaded([_ReadCounted("defining") for _ in range(300)])
    project.features[0]._status = "completed"
    _ReadCounted.reads = 0
    features.observe(load, _Store(), (), {}, project)
    assert (features.total(), _ReadCounted.reads) == (299, 300)
    features.observe(load, _Store(), (), {}, project)  # the nested load of the same call: nothing read
    assert (features.total(), _ReadCounted.reads) == (299, 300)

    project.features.append(_ReadCounted("defining"))
    features.observe(save, _Store(), (project,), {}, None)
    assert (features.total(), _ReadCounted.reads) == (300, 301)

    project.features[1]._status = "failed"
    features.settled(SimpleNamespace(project_id="p1"))  # what Feature.fail's wrapper reports
    features.observe(save, _Store(), (project,), {}, None)
    assert (features.total(), _ReadCounted.reads) == (299, 602)

    reloaded = _Loaded(list(project.features))  # read from disk again
    features.observe(load, _Store(), (), {}, reloaded)
    assert (features.total(), _ReadCounted.reads) == (299, 903)


def test_the_upstream_server_shape_counts_completed_features_through_the_wrappers(
    otel: CapturedTelemetry, upstream: dict[str, ModuleType], tmp_path: Path
) -> None:
    """Load, complete, save the same object in one call: the settled feature is not counted."""
    repository_class: Any = upstream["projects"].FileSystemProjectRepository

    async def call(complete: str | None = None) -> str:
        repository = repository_class()
        project = await repository.get_or_create(str(tmp_path))
        if complete is None:
            feature_id: str = project.start_feature("p").id
        else:
            project.get_feature(complete).complete()
            feature_id = complete
        await repository.save(project)
        return feature_id

    first = asyncio.run(call())
    asyncio.run(call())
    assert active(otel) == 2
    asyncio.run(call(complete=first))
    assert active(otel) == 1
