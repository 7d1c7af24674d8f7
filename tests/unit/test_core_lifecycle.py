"""Every valid and invalid Project and Feature transition, with its coded refusal."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from cde_otel.core import PHASES, FeatureStatus, Project, ProjectStatus
from cde_otel.errors import FeatureError, ProjectError, ReadOnlyModeError, ValidationError

VALID_PROJECT_MOVES = {
    (ProjectStatus.ONBOARDING, ProjectStatus.ACTIVE),
    (ProjectStatus.ONBOARDING, ProjectStatus.ERROR),
    (ProjectStatus.ACTIVE, ProjectStatus.ARCHIVED),
    (ProjectStatus.ACTIVE, ProjectStatus.ERROR),
    (ProjectStatus.ARCHIVED, ProjectStatus.ACTIVE),
    (ProjectStatus.ARCHIVED, ProjectStatus.ERROR),
}
ALL_MOVES = set(itertools.product(ProjectStatus, ProjectStatus))


def project_in(status: ProjectStatus) -> Project:
    project = Project(name="p", path="/tmp/p")
    project.status = status
    return project


def active_project() -> Project:
    project = Project(name="p", path="/tmp/p")
    project.activate()
    return project


@pytest.mark.parametrize(("source", "target"), sorted(VALID_PROJECT_MOVES))
def test_valid_project_transition(source: ProjectStatus, target: ProjectStatus) -> None:
    project = project_in(source)
    before = project.updated_at
    project.transition_status(target)
    assert project.status is target
    assert project.updated_at >= before


@pytest.mark.parametrize(("source", "target"), sorted(ALL_MOVES - VALID_PROJECT_MOVES))
def test_invalid_project_transition_refused(source: ProjectStatus, target: ProjectStatus) -> None:
    project = project_in(source)
    with pytest.raises(ProjectError) as caught:
        project.transition_status(target)
    assert caught.value.code == "E003"
    assert caught.value.context["status"] == source.value
    assert caught.value.context["target"] == target.value
    assert project.status is source


def test_activate_and_archive_shortcuts() -> None:
    project = active_project()
    assert project.status is ProjectStatus.ACTIVE
    project.archive()
    assert project.status is ProjectStatus.ARCHIVED
    project.activate()
    assert project.status is ProjectStatus.ACTIVE


def test_unknown_project_status_is_validation_error() -> None:
    with pytest.raises(ValidationError) as caught:
        active_project().transition_status("paused")
    assert caught.value.code == "E304"


@pytest.mark.parametrize("status", [s for s in ProjectStatus if s is not ProjectStatus.ACTIVE])
def test_start_feature_requires_active_project(status: ProjectStatus) -> None:
    project = project_in(status)
    with pytest.raises(FeatureError) as caught:
        project.start_feature("do something")
    assert caught.value.code == "E101"
    assert caught.value.code.startswith("E1")
    assert caught.value.recoverable is (status is not ProjectStatus.ERROR)
    assert project.features == {}


def test_start_feature_on_active_project() -> None:
    project = active_project()
    feature = project.start_feature("Add login\nwith OAuth", workflow_type="quick-fix")
    assert feature.status is FeatureStatus.DEFINING
    assert feature.current_phase == "define"
    assert feature.name == "Add login"
    assert project.get_feature(feature.id) is feature
    assert project.get_active_features() == [feature]


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [({"prompt": ""}, "E301"), ({"prompt": "   "}, "E301"), ({"prompt": "x" * 100_001}, "E301"),
     ({"prompt": "ok", "workflow_type": "nope"}, "E305"), ({"prompt": "ok", "name": ""}, "E302")],
)  # fmt: skip
def test_start_feature_validates_input(kwargs: dict[str, str], code: str) -> None:
    project = active_project()
    with pytest.raises(ValidationError) as caught:
        project.start_feature(**kwargs)
    assert caught.value.code == code
    assert project.features == {}


def test_get_feature_unknown_id() -> None:
    with pytest.raises(FeatureError) as caught:
        active_project().get_feature("missing")
    assert caught.value.code == "E104"


@pytest.mark.parametrize("index", range(len(PHASES) - 1))
def test_each_phase_advances_to_the_next(index: int) -> None:
    feature = active_project().start_feature("work")
    for phase in PHASES[1 : index + 1]:
        feature.advance_phase(phase, {"done": phase})
    nxt = PHASES[index + 1]
    feature.advance_phase(nxt, {"result": index})
    assert feature.current_phase == nxt
    assert feature.status.value.startswith(nxt[:4])
    assert feature.artifacts[PHASES[index]] == {"result": index}
    assert [h["phase"] for h in feature.phase_history] == list(PHASES[: index + 1])


@pytest.mark.parametrize(
    ("current", "target"),
    [(PHASES[i], PHASES[j]) for i in range(len(PHASES)) for j in range(len(PHASES)) if j != i + 1],
)
def test_phase_skip_or_regress_refused(current: str, target: str) -> None:
    feature = active_project().start_feature("work")
    for phase in PHASES[1 : PHASES.index(current) + 1]:
        feature.advance_phase(phase)
    artifacts = dict(feature.artifacts)
    with pytest.raises(FeatureError) as caught:
        feature.advance_phase(target, {"x": 1})
    assert caught.value.code == "E102"
    assert feature.current_phase == current
    assert feature.artifacts == artifacts


def test_unknown_phase_and_bad_results() -> None:
    feature = active_project().start_feature("work")
    with pytest.raises(ValidationError) as caught:
        feature.advance_phase("deploy")
    assert caught.value.code == "E303"
    with pytest.raises(ValidationError) as caught:
        feature.advance_phase("decompose", {"obj": object()})
    assert caught.value.code == "E305"
    with pytest.raises(ValidationError):
        feature.advance_phase("decompose", ["not", "a", "mapping"])  # type: ignore[arg-type]
    assert feature.current_phase == "define"


@pytest.mark.parametrize("phase", PHASES[:-1])
def test_complete_only_from_review(phase: str) -> None:
    feature = active_project().start_feature("work")
    for nxt in PHASES[1 : PHASES.index(phase) + 1]:
        feature.advance_phase(nxt)
    with pytest.raises(FeatureError) as caught:
        feature.complete()
    assert caught.value.code == "E105"
    assert feature.status is not FeatureStatus.COMPLETED


def test_complete_from_review_then_terminal() -> None:
    project = active_project()
    feature = project.start_feature("work")
    for phase in PHASES[1:]:
        feature.advance_phase(phase)
    feature.complete({"approved": True})
    assert feature.status is FeatureStatus.COMPLETED
    assert feature.artifacts["review"] == {"approved": True}
    assert project.get_active_features() == []
    actions: list[Callable[[], object]] = [
        feature.complete,
        lambda: feature.fail("late"),
        lambda: feature.advance_phase("test"),
    ]
    for action in actions:
        with pytest.raises(FeatureError) as caught:
            action()
        assert caught.value.code == "E103"


@pytest.mark.parametrize("phase", PHASES)
def test_fail_from_any_non_terminal_phase(phase: str) -> None:
    feature = active_project().start_feature("work")
    for nxt in PHASES[1 : PHASES.index(phase) + 1]:
        feature.advance_phase(nxt)
    feature.fail("broken build")
    assert feature.status is FeatureStatus.FAILED
    assert feature.failure_reason == "broken build"
    with pytest.raises(FeatureError) as caught:
        feature.advance_phase("decompose")
    assert caught.value.code == "E103"


def test_fail_needs_a_reason() -> None:
    feature = active_project().start_feature("work")
    with pytest.raises(ValidationError):
        feature.fail("")
    assert feature.status is FeatureStatus.DEFINING


def test_read_only_project_blocks_every_mutation_but_not_queries() -> None:
    project = active_project()
    feature = project.start_feature("work")
    project.read_only, project.read_only_reason = True, "disk full"
    mutations: list[Callable[[], object]] = [
        lambda: project.start_feature("more"),
        project.archive,
        project.activate,
        lambda: project.transition_status("error"),
        lambda: feature.advance_phase("decompose"),
        lambda: feature.fail("x"),
        feature.complete,
    ]
    for mutate in mutations:
        with pytest.raises(ReadOnlyModeError) as caught:
            mutate()
        assert caught.value.code == "E207"
        assert caught.value.context["reason"] == "disk full"
    assert project.get_feature(feature.id) is feature
    assert project.get_active_features() == [feature]
    assert project.status is ProjectStatus.ACTIVE
    assert feature.current_phase == "define"
