"""Bad input: a caller's bad input is a coded validation error at the
boundary, nothing unstorable gets into a project, and bad input never counts as a dependency
failure for the circuit breaker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cde_otel.core import FileSystemProjectRepository, Project
from cde_otel.errors import CDEError, ValidationError
from cde_otel.resilience import (
    ResilientProjectRepository,
)
from cde_otel.settings import load_settings
from cde_otel.testing import ManualClock

LONE_SURROGATE = "x \udc80"
DEADLINE_S = 10.0


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    repo = FileSystemProjectRepository()
    project = repo.get_or_create(tmp_path)
    project.activate()
    repo.save(project)
    yield project


def coded(call: Callable[[], Any]) -> CDEError:
    with pytest.raises(CDEError) as caught:
        call()
    return caught.value


# -- lone surrogates and other text that cannot be stored --------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "code"),
    [
        (lambda p: p.start_feature(LONE_SURROGATE), "E301"),
        (lambda p: p.start_feature("fine", name=LONE_SURROGATE), "E302"),
        (lambda p: p.start_feature("fine").fail(LONE_SURROGATE), "E305"),
        (lambda p: p.start_feature("fine").advance_phase("decompose", {"spec": LONE_SURROGATE}), "E305"),
        (lambda p: p.start_feature("fine").advance_phase("decompose", {LONE_SURROGATE: 1}), "E305"),
        (lambda p: p.start_feature("fine").advance_phase("decompose", {"score": float("nan")}), "E305"),
        (lambda p: p.start_feature("fine").advance_phase("decompose", {"score": float("-inf")}), "E305"),
    ],
    ids=["prompt", "name", "fail reason", "artifact value", "artifact key", "NaN artifact", "infinite artifact"],
)
def test_text_that_cannot_be_stored_is_refused_at_the_boundary(
    project: Project, operation: Callable[[Project], Any], code: str
) -> None:
    error = coded(lambda: operation(project))

    assert isinstance(error, ValidationError) and error.code == code
    # nothing unstorable got in: everything the project holds saves and reloads equal
    FileSystemProjectRepository().save(project)
    assert FileSystemProjectRepository().get_by_path(project.path) == project


def test_a_new_project_name_with_a_lone_surrogate_is_refused(tmp_path: Path) -> None:
    error = coded(lambda: FileSystemProjectRepository().get_or_create(tmp_path, name=LONE_SURROGATE))

    assert error.code == "E302"
    assert not (tmp_path / ".cde" / "state.json").exists()


def test_bad_input_never_opens_the_breaker(tmp_path: Path) -> None:
    config = load_settings({}, breaker_failures=2, retry_attempts=1)
    repo = ResilientProjectRepository(config, sleep=lambda _s: None, clock=ManualClock())
    project = repo.get_or_create(tmp_path)
    project.activate()
    repo.save(project)

    for _ in range(5):
        project.name = LONE_SURROGATE  # bypasses the boundary: save must still refuse it with a code
        error = coded(lambda: repo.save(project))
        assert error.code == "E305"

    assert repo.breaker.state == "closed" and repo.breaker.failure_count == 0
    project.start_feature("a valid save goes through")
    repo.save(project)
    assert project.revision == 3


# -- unhashable arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "code"),
    [
        (lambda p: p.start_feature("x", workflow_type=["x"]), "E305"),
        (lambda p: p.start_feature("x", workflow_type={"x": 1}), "E305"),
        (lambda p: p.start_feature("x").advance_phase(["decompose"]), "E303"),
        (lambda p: p.start_feature("x").advance_phase({"phase": "decompose"}), "E303"),
        (lambda p: p.get_feature(["x"]), "E305"),
        (lambda p: p.get_feature({}), "E305"),
        (lambda p: p.transition_status(["active"]), "E304"),
    ],
    ids=["workflow list", "workflow dict", "phase list", "phase dict", "feature id list", "feature id dict", "status"],
)
def test_unhashable_arguments_are_coded_errors(
    project: Project, operation: Callable[[Project], Any], code: str
) -> None:
    error = coded(lambda: operation(project))

    assert error.code == code
    assert isinstance(error, ValidationError)


def test_a_feature_refused_an_unhashable_phase_stays_where_it_was(project: Project) -> None:
    feature = project.start_feature("stays")

    coded(lambda: feature.advance_phase(["decompose"], {"spec": "x"}))  # type: ignore[arg-type]

    assert feature.current_phase == "define" and feature.artifacts == {}


@pytest.mark.parametrize("backup", [["state-r00000001.json"], {"name": 1}, 7])
def test_a_backup_name_that_is_not_text_is_a_coded_error(project: Project, backup: Any) -> None:
    repo = FileSystemProjectRepository()

    loading = coded(lambda: repo.load_backup(project.path, backup))
    restoring = coded(lambda: repo.restore_backup(project.path, backup))

    assert loading.code == restoring.code == "E209"
