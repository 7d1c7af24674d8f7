"""The core workflow as plain operations, for the tools of ``cde-otel mcp``.

Each returns a JSON-safe dict or raises a coded ``CDEError``; the server turns the error into
``ErrorFormatter.to_json`` with ``isError``. No MCP here, so the operations test without a client.

Every argument is checked for length first (E005), then every ``project_path`` is confined to the
server's :class:`~cde_otel.core.ProjectRoots` (E004) before anything reads or creates state there.
Only ``start_feature`` creates a project; ``feature_status`` reads (a directory without state
answers with no features, and stays without ``.cde/``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cde_otel.core import PHASES, Feature, FileSystemProjectRepository, Project, ProjectRoots, ProjectStatus
from cde_otel.core._validation import checked_id
from cde_otel.core.model import check_phase
from cde_otel.errors import FeatureError
from cde_otel.resilience import advance_and_save, complete_and_save


class WorkflowTools:
    """Start a feature, submit a phase's work, read status - each a load, a change and a save."""

    def __init__(
        self,
        repository: FileSystemProjectRepository,
        default_project: str | os.PathLike[str],
        allowed_roots: Iterable[str | os.PathLike[str]] = (),
    ) -> None:
        self.repository = repository
        self.roots = ProjectRoots([default_project, *allowed_roots])
        self.default_project = str(self.roots.default)

    def project_root(self, project_path: str | None) -> Path:
        """The confined, resolved directory of ``project_path`` (None: the default project)."""
        return self.roots.confine(project_path)

    def _project(self, project_path: str | None) -> Project:
        return self.repository.get_or_create(self.project_root(project_path))

    def start_feature(
        self, prompt: str, project_path: str | None = None, workflow_type: str = "default", name: str | None = None
    ) -> dict[str, Any]:
        project = self._project(project_path)
        if project.status is ProjectStatus.ONBOARDING:
            project.activate()  # a project an agent starts a feature in is active
        feature = project.start_feature(prompt, workflow_type, name)
        try:
            self.repository.save(project)
        except Exception:
            project.features.pop(feature.id, None)  # not started unless persisted
            raise
        return {"project_id": project.id, "project_path": project.path, **_feature_view(feature)}

    def submit_work(
        self, feature_id: str, phase: str, results: Mapping[str, Any] | None = None, project_path: str | None = None
    ) -> dict[str, Any]:
        """Records ``results`` as the work of ``phase`` (the feature's current phase) and moves on.

        The work of the last phase (review) completes the feature.
        """
        checked_id(feature_id)
        check_phase(phase)
        project = self._project(project_path)
        if phase == PHASES[-1]:
            feature = complete_and_save(self.repository, project, feature_id, results)
        else:
            feature = advance_and_save(self.repository, project, feature_id, PHASES[PHASES.index(phase) + 1], results)
        return {"project_id": project.id, **_feature_view(feature)}

    def feature_status(self, feature_id: str | None = None, project_path: str | None = None) -> dict[str, Any]:
        """Reads only: a directory without state gets no ``.cde/`` (and no features)."""
        if feature_id is not None:
            checked_id(feature_id)
        root = self.project_root(project_path)
        project = self.repository.get_by_path(root)
        if project is None:
            if feature_id is not None:
                raise FeatureError(
                    f"no feature {feature_id!r}: the project at {root} has no CDE state yet",
                    "E104",
                    {"feature_id": feature_id, "project_id": None, "path": str(root)},
                )
            return {"project_id": None, "project_path": str(root), "project_status": None, "features": []}
        if feature_id is not None:
            return {"project_id": project.id, **_feature_view(project.get_feature(feature_id))}
        return {
            "project_id": project.id,
            "project_path": project.path,
            "project_status": project.status.value,
            "features": [_feature_view(f) for f in project.features.values()],
        }


def _feature_view(feature: Feature) -> dict[str, Any]:
    done = feature.is_terminal
    return {
        "feature_id": feature.id,
        "name": feature.name,
        "status": feature.status.value,
        "phase": feature.current_phase,
        "next_phase": None if done else _next(feature.current_phase),
        "completed_phases": [entry["phase"] for entry in feature.phase_history],
    }


def _next(phase: str) -> str:
    index = PHASES.index(phase)
    return PHASES[index + 1] if index + 1 < len(PHASES) else "complete"
