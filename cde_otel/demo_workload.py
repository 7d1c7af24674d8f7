"""A realistic CDE workload for the demo, the end-to-end suite and the benchmarks.

Pure use of the core API (telemetry, if on, observes it from outside): features go through
every phase with progress saved at each phase, and the run also exercises what production
sees — starting features on a project that is not active yet, skipped phases, features that
fail, and an archive/re-activate cycle. Deterministic for a given seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cde_otel._exceptions import CDEError
from cde_otel.core import PHASES, FileSystemProjectRepository, Project

_PROMPTS = (
    "Add OAuth login with refresh tokens",
    "Paginate the project list endpoint",
    "Export features as Markdown",
    "Retry flaky webhook deliveries",
    "Show phase durations on the dashboard",
    "Rate-limit the public API",
)


@dataclass
class WorkloadResult:
    project: Project
    completed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)  # error code -> how many times

    def refuse(self, error: CDEError) -> None:
        self.refused[error.code] = self.refused.get(error.code, 0) + 1


def run_workload(
    project_dir: str | Path,
    features: int = 12,
    *,
    seed: int = 7,
    repository: FileSystemProjectRepository | None = None,
    on_feature_done: Callable[[int], None] | None = None,
) -> WorkloadResult:
    """Drives ``features`` features through the CDE phases in ``project_dir``."""
    rng = random.Random(seed)
    repo = repository or FileSystemProjectRepository()
    project = repo.get_or_create(project_dir, name="cde-otel demo")
    result = WorkloadResult(project)
    try:
        project.start_feature("Too early: the project is still onboarding")
    except CDEError as error:  # E101: features need an ACTIVE project
        result.refuse(error)
    if project.status.value != "active":
        project.activate()
    repo.save(project)

    for index in range(features):
        feature = project.start_feature(f"{rng.choice(_PROMPTS)} (#{index})")
        repo.save(project)
        fails_at = rng.choice(PHASES[1:]) if rng.random() < 0.2 else None
        for step, phase in enumerate(PHASES[1:], start=1):
            if step + 1 < len(PHASES) and rng.random() < 0.1:
                try:  # agents sometimes try to skip a phase
                    feature.advance_phase(PHASES[step + 1], {"skipped": True})
                except CDEError as error:  # E102
                    result.refuse(error)
            if phase == fails_at:
                feature.fail(f"tests kept failing in {phase}")
                repo.save(project)
                result.failed.append(feature.id)
                break
            feature.advance_phase(phase, {"summary": f"{phase} done", "items": rng.randint(1, 9)})
            repo.save(project)  # progress is saved at each phase
        else:
            feature.complete({"approved": True})
            repo.save(project)
            result.completed.append(feature.id)
        if on_feature_done is not None:
            on_feature_done(index)

    try:
        project.activate()  # already active: an invalid transition
    except CDEError as error:  # E003
        result.refuse(error)
    project.archive()
    project.activate()
    repo.save(project)
    return result
