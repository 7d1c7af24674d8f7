"""Projects and features, with the upstream entities' names and methods (a small subset)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from cde_orchestrator.domain.exceptions import InvalidPhaseError

PHASES = ("define", "decompose", "design", "implement", "test", "review")


@dataclass(frozen=True)
class ProjectId:
    value: str

    def __str__(self) -> str:
        return self.value


class ProjectStatus(StrEnum):
    ONBOARDING = "onboarding"
    ACTIVE = "active"


class FeatureStatus(StrEnum):
    DEFINING = "defining"
    IN_PROGRESS = "in_progress"
    REVIEWING = "reviewing"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass
class Feature:
    id: str
    project_id: ProjectId
    prompt: str
    workflow_type: str = "standard"
    status: FeatureStatus = FeatureStatus.DEFINING
    current_phase: str = PHASES[0]
    artifacts: dict[str, Any] = field(default_factory=dict)

    def advance_phase(self, next_phase: str, results: dict[str, Any]) -> None:
        if next_phase not in PHASES or PHASES.index(next_phase) != PHASES.index(self.current_phase) + 1:
            raise InvalidPhaseError(self.current_phase, next_phase)
        self.artifacts[self.current_phase] = results
        self.current_phase = next_phase
        self.status = FeatureStatus.REVIEWING if next_phase == "review" else FeatureStatus.IN_PROGRESS

    def complete(self) -> None:
        self.status = FeatureStatus.COMPLETED

    def fail(self, reason: str) -> None:
        self.status = FeatureStatus.FAILED
        self.artifacts["failure"] = reason


@dataclass
class Project:
    id: ProjectId
    name: str
    path: str
    status: ProjectStatus = ProjectStatus.ONBOARDING
    features: list[Feature] = field(default_factory=list)
    updated_at: str = ""

    @classmethod
    def create(cls, name: str, path: str) -> Project:
        return cls(ProjectId(uuid.uuid4().hex), name, path)

    def activate(self) -> None:
        self.transition_status(ProjectStatus.ACTIVE)

    def transition_status(self, target: ProjectStatus) -> None:
        self.status = target
        self.updated_at = datetime.now(UTC).isoformat()

    def start_feature(self, prompt: str, workflow_type: str = "standard") -> Feature:
        feature = Feature(uuid.uuid4().hex, self.id, prompt, workflow_type)
        self.features.append(feature)
        return feature

    def get_feature(self, feature_id: str) -> Feature | None:
        return next((f for f in self.features if f.id == feature_id), None)
