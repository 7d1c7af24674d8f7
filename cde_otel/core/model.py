"""The single-project CDE domain: a Project and the Features it drives through phases.

Lifecycles:

* Project: ONBOARDING -> ACTIVE <-> ARCHIVED; any non-terminal status -> ERROR (terminal).
* Feature: define -> decompose -> design -> implement -> test -> review, then
  COMPLETED; or FAILED from any non-terminal phase. Phases never regress or skip,
  and each phase's artifacts are written once (append-only).

Every refusal is a coded error from :mod:`cde_otel._exceptions`. While
``Project.read_only`` is true every mutation raises ``ReadOnlyModeError`` and
queries keep working.
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cde_otel import breadcrumbs
from cde_otel._exceptions import FeatureError, ProjectError, ReadOnlyModeError, ValidationError, quote
from cde_otel.core._validation import (
    MAX_PHASE_LENGTH,
    MAX_PROMPT_LENGTH,
    bounded,
    checked_id,
    validate_name,
    validated_results,
    validated_text,
)

WORKFLOW_TYPES = frozenset({"default", "quick-fix", "research", "documentation", "refactor", "hotfix"})
PHASES: tuple[str, ...] = ("define", "decompose", "design", "implement", "test", "review")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class ProjectStatus(enum.StrEnum):
    ONBOARDING = "onboarding"
    ACTIVE = "active"
    ARCHIVED = "archived"
    ERROR = "error"


_PROJECT_TRANSITIONS: dict[ProjectStatus, frozenset[ProjectStatus]] = {
    ProjectStatus.ONBOARDING: frozenset({ProjectStatus.ACTIVE, ProjectStatus.ERROR}),
    ProjectStatus.ACTIVE: frozenset({ProjectStatus.ARCHIVED, ProjectStatus.ERROR}),
    ProjectStatus.ARCHIVED: frozenset({ProjectStatus.ACTIVE, ProjectStatus.ERROR}),
    ProjectStatus.ERROR: frozenset(),
}


class FeatureStatus(enum.StrEnum):
    DEFINING = "defining"
    DECOMPOSING = "decomposing"
    DESIGNING = "designing"
    IMPLEMENTING = "implementing"
    TESTING = "testing"
    REVIEWING = "reviewing"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self in (FeatureStatus.COMPLETED, FeatureStatus.FAILED)


PHASE_STATUS: dict[str, FeatureStatus] = dict(zip(PHASES, list(FeatureStatus)[: len(PHASES)], strict=True))


def check_phase(phase: object) -> str:
    """``phase`` if it is one of :data:`PHASES`: E005 when over-long (checked first), else E303."""
    bounded(phase, what="phase", max_length=MAX_PHASE_LENGTH)
    if not isinstance(phase, str) or phase not in PHASE_STATUS:
        shown = phase if isinstance(phase, str) else quote(phase)
        raise ValidationError(f"unknown phase {quote(phase)}", "E303", {"phase": shown, "phases": list(PHASES)})
    return phase


@dataclass(eq=False)
class Feature:
    """One unit of work moving through the CDE phases."""

    project_id: str
    prompt: str
    name: str
    workflow_type: str = "default"
    id: str = field(default_factory=new_id)
    status: FeatureStatus = FeatureStatus.DEFINING
    current_phase: str = PHASES[0]
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    phase_history: list[dict[str, str]] = field(default_factory=list)
    failure_reason: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    _project: Project | None = field(default=None, repr=False, compare=False)
    #: Set when a rollback dropped this feature from its project: it then refuses every change (E106).
    _detached_from: str | None = field(default=None, repr=False, compare=False)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Feature) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    def snapshot(self) -> dict[str, Any]:
        return {"feature_id": self.id, "status": self.status.value, "phase": self.current_phase}

    def _check_mutable(self, operation: str) -> None:
        if self._detached_from is not None:
            raise FeatureError(
                f"feature {self.id} is no longer part of project {self._detached_from}: a failed save rolled the "
                f"project back to a version without it; {operation} was refused",
                "E106",
                {"feature_id": self.id, "project_id": self._detached_from, "operation": operation},
                snapshot=self.snapshot(),
            )
        if self._project is not None:
            self._project._check_writable(operation)
        if self.is_terminal:
            raise FeatureError(
                f"feature {self.id} is {self.status.value}; it accepts no more changes",
                "E103",
                {"feature_id": self.id, "status": self.status.value, "operation": operation},
                snapshot=self.snapshot(),
            )

    def advance_phase(self, next_phase: str, results: Mapping[str, Any] | None = None) -> None:
        """Records ``results`` as the current phase's artifacts and moves to ``next_phase``."""
        breadcrumbs.record("Feature.advance_phase", feature_id=self.id, phase=self.current_phase)
        self._check_mutable("advance_phase")
        check_phase(next_phase)
        current_index = PHASES.index(self.current_phase)
        target_index = PHASES.index(next_phase)
        if target_index != current_index + 1:
            expected = PHASES[current_index + 1] if current_index + 1 < len(PHASES) else "complete()"
            raise FeatureError(
                f"cannot go from {self.current_phase!r} to {next_phase!r}; the next phase is {expected!r}",
                "E102",
                {"feature_id": self.id, "current_phase": self.current_phase,
                 "requested_phase": next_phase, "expected_phase": expected},
                snapshot=self.snapshot(),
            )  # fmt: skip
        artifacts = validated_results(results)
        now = utcnow()
        self.artifacts[self.current_phase] = artifacts
        self.phase_history.append({"phase": self.current_phase, "completed_at": now.isoformat()})
        self.current_phase = next_phase
        self.status = PHASE_STATUS[next_phase]
        self.updated_at = now

    def complete(self, results: Mapping[str, Any] | None = None) -> None:
        """Finishes the feature; only allowed from the review phase."""
        breadcrumbs.record("Feature.complete", feature_id=self.id, phase=self.current_phase)
        self._check_mutable("complete")
        if self.current_phase != PHASES[-1]:
            raise FeatureError(
                f"feature {self.id} is in {self.current_phase!r}; it can only be completed from 'review'",
                "E105",
                {"feature_id": self.id, "current_phase": self.current_phase},
                snapshot=self.snapshot(),
            )
        artifacts = validated_results(results)
        now = utcnow()
        self.artifacts[self.current_phase] = artifacts
        self.phase_history.append({"phase": self.current_phase, "completed_at": now.isoformat()})
        self.status = FeatureStatus.COMPLETED
        self.updated_at = now

    def fail(self, reason: str) -> None:
        """Marks the feature failed from any non-terminal phase."""
        breadcrumbs.record("Feature.fail", feature_id=self.id, phase=self.current_phase)
        self._check_mutable("fail")
        self.failure_reason = validated_text(reason, code="E305", what="reason", max_length=MAX_PROMPT_LENGTH)
        self.status = FeatureStatus.FAILED
        self.updated_at = utcnow()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project_id": self.project_id,
            "name": self.name,
            "prompt": self.prompt,
            "workflow_type": self.workflow_type,
            "status": self.status.value,
            "current_phase": self.current_phase,
            "artifacts": self.artifacts,
            "phase_history": self.phase_history,
            "failure_reason": self.failure_reason,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(eq=False)
class Project:
    """A project under CDE management and the features it has started."""

    name: str
    path: str
    id: str = field(default_factory=new_id)
    status: ProjectStatus = ProjectStatus.ONBOARDING
    features: dict[str, Feature] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    #: Set by the repository when persistence fails critically; never persisted.
    read_only: bool = field(default=False, compare=False)
    read_only_reason: str | None = field(default=None, compare=False)
    #: The state-file revision this object was loaded from or last saved as.
    revision: int = field(default=0, compare=False)
    # While read-only: the repository's rate-limited probe write that may end read-only mode.
    _writable_probe: Callable[[Project], bool] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        for feature in self.features.values():
            feature._project = self

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Project) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def snapshot(self) -> dict[str, Any]:
        return {"project_id": self.id, "status": self.status.value, "features": len(self.features)}

    # -- persistence state (set by a repository) ---------------------------------
    def mark_read_only(self, reason: str, probe: Callable[[Project], bool] | None = None) -> None:
        """Refuses every mutation (E207) from now on; queries keep working.

        ``probe``, when given, is asked before each refused mutation and ends read-only mode by
        returning True (the repository's rate-limited write probe: the storage is back).
        """
        self.read_only, self.read_only_reason = True, reason
        self._writable_probe = probe

    def mark_writable(self) -> None:
        """Ends read-only mode."""
        self.read_only, self.read_only_reason = False, None
        self._writable_probe = None

    def restore_from(self, good: Project) -> None:
        """Makes this object equal to ``good`` in place, so references callers hold stay valid.

        Features present in both are updated in place too; read-only state and revision are the
        repository's and stay as they are.
        """
        for item in dataclasses.fields(Project):
            # ``path`` is where the project lives now (it may have moved since the good version was saved).
            if item.name not in ("path", "features", "read_only", "read_only_reason", "revision", "_writable_probe"):
                setattr(self, item.name, getattr(good, item.name))
        features: dict[str, Feature] = {}
        for feature_id, good_feature in good.features.items():
            current = self.features.get(feature_id)
            if current is None:
                good_feature._project = self
                features[feature_id] = good_feature
                continue
            for item in dataclasses.fields(Feature):
                if item.name != "_project":
                    setattr(current, item.name, getattr(good_feature, item.name))
            features[feature_id] = current
        for feature_id, dropped in self.features.items():
            if feature_id not in features:  # callers may still hold it: make it refuse changes, not lose them
                dropped._project, dropped._detached_from = None, self.id
        self.features.clear()
        self.features.update(features)

    def _check_writable(self, operation: str) -> None:
        if self.read_only:
            probe = self._writable_probe
            if probe is not None and probe(self):
                return  # the storage is back: the probe ended read-only mode
            raise ReadOnlyModeError(
                f"project {self.name!r} is read-only ({self.read_only_reason or 'persistence is failing'}); "
                f"{operation} was refused, queries still work",
                "E207",
                {"project_id": self.id, "path": self.path, "operation": operation,
                 "reason": self.read_only_reason or "persistence is failing"},
                snapshot=self.snapshot(),
            )  # fmt: skip

    # -- status lifecycle -------------------------------------------------
    def transition_status(self, target: ProjectStatus | str) -> None:
        breadcrumbs.record("Project.transition_status", project_id=self.id, status=self.status.value)
        self._check_writable("transition_status")
        bounded(target, what="status", max_length=MAX_PHASE_LENGTH)
        try:
            wanted = ProjectStatus(target)
        except ValueError as exc:
            raise ValidationError(
                f"unknown project status {quote(target)}", "E304",
                {"status": quote(target), "statuses": [s.value for s in ProjectStatus]},
            ) from exc  # fmt: skip
        if wanted not in _PROJECT_TRANSITIONS[self.status]:
            raise ProjectError(
                f"project cannot go from {self.status.value} to {wanted.value}",
                "E003",
                {"project_id": self.id, "status": self.status.value, "target": wanted.value,
                 "allowed": sorted(s.value for s in _PROJECT_TRANSITIONS[self.status])},
                snapshot=self.snapshot(),
            )  # fmt: skip
        self.status = wanted
        self.updated_at = utcnow()

    def activate(self) -> None:
        self.transition_status(ProjectStatus.ACTIVE)

    def archive(self) -> None:
        self.transition_status(ProjectStatus.ARCHIVED)

    # -- features ---------------------------------------------------------
    def start_feature(self, prompt: str, workflow_type: str = "default", name: str | None = None) -> Feature:
        """Starts a feature in the ``define`` phase; the project must be ACTIVE."""
        breadcrumbs.record("Project.start_feature", project_id=self.id)
        self._check_writable("start_feature")
        if self.status is not ProjectStatus.ACTIVE:
            raise FeatureError(
                f"cannot start a feature while the project is {self.status.value}; it must be active",
                "E101",
                {"project_id": self.id, "status": self.status.value, "path": self.path},
                recoverable=self.status is not ProjectStatus.ERROR,
                snapshot=self.snapshot(),
            )
        text = validated_text(prompt, code="E301", what="prompt", max_length=MAX_PROMPT_LENGTH)
        bounded(workflow_type, what="workflow_type", max_length=MAX_PHASE_LENGTH)
        if not isinstance(workflow_type, str) or workflow_type not in WORKFLOW_TYPES:
            raise ValidationError(
                f"unknown workflow type {quote(workflow_type)}",
                "E305",
                {"field": "workflow_type", "value": quote(workflow_type), "allowed": sorted(WORKFLOW_TYPES)},
            )
        title = validate_name(name) if name is not None else _default_feature_name(text)
        feature = Feature(project_id=self.id, prompt=text, name=title, workflow_type=workflow_type)
        feature._project = self
        self.features[feature.id] = feature
        self.updated_at = feature.created_at
        return feature

    def get_feature(self, feature_id: str) -> Feature:
        checked_id(feature_id)  # length first: a 10 MB id is refused before it is hashed or quoted
        try:
            return self.features[feature_id]
        except KeyError:
            raise FeatureError(
                f"no feature {quote(feature_id)} in project {self.name!r}",
                "E104",
                {"feature_id": feature_id, "project_id": self.id},
            ) from None

    def get_active_features(self) -> list[Feature]:
        return [f for f in self.features.values() if not f.is_terminal]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "path": self.path,
            "status": self.status.value,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "features": [f.to_dict() for f in self.features.values()],
        }


def _default_feature_name(prompt: str) -> str:
    first_line = prompt.strip().splitlines()[0]
    return first_line[:60]
