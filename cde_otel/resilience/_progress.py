"""Phase-by-phase progress that survives crashes: mutate, save, or undo the submission.

    feature = advance_and_save(repo, project, feature.id, "design", {"spec": "..."})

Each call records one phase and saves at once, so after a crash or restart
``repo.get_by_path(path).get_feature(id).current_phase`` is the last phase whose save
returned. If the save fails the phase submission is rolled back in memory (the file
keeps the last good version) and the error propagates: conflicts E202 too, so the
caller reloads and resubmits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cde_otel._exceptions import StateError
from cde_otel.core.model import Feature, Project
from cde_otel.core.repository import FileSystemProjectRepository


def _save_or_roll_back(repo: FileSystemProjectRepository, project: Project) -> None:
    try:
        repo.save(project)
    except StateError as exc:
        if exc.code == "E202":
            repo.rollback(project)  # save() leaves conflicts to the caller; a submission is undone either way
        raise


def advance_and_save(
    repo: FileSystemProjectRepository,
    project: Project,
    feature_id: str,
    next_phase: str,
    results: Mapping[str, Any] | None = None,
) -> Feature:
    """Records ``results`` for the current phase, moves to ``next_phase`` and saves."""
    repo.ensure_writable(project)  # ends read-only mode first if the storage is back
    feature = project.get_feature(feature_id)
    feature.advance_phase(next_phase, results)
    _save_or_roll_back(repo, project)
    return feature


def complete_and_save(
    repo: FileSystemProjectRepository,
    project: Project,
    feature_id: str,
    results: Mapping[str, Any] | None = None,
) -> Feature:
    """Completes the feature from its review phase and saves."""
    repo.ensure_writable(project)
    feature = project.get_feature(feature_id)
    feature.complete(results)
    _save_or_roll_back(repo, project)
    return feature
