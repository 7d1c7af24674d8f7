"""The rules a state document's ``project`` must follow, on load and on save (see :mod:`cde_otel.core.state`).

Every defect is a ``StateError`` E204 naming the field and what it must be: types, known
statuses and workflow types, a status that matches the phase, a history of exactly the phases
before the current one (plus ``review`` once completed) with artifacts only for those, and the
bounds of :mod:`cde_otel.core._validation` on ids, names, prompts, paths and artifacts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cde_otel._exceptions import StateError
from cde_otel.core._validation import (
    MAX_ID_LENGTH,
    MAX_NAME_LENGTH,
    MAX_PATH_LENGTH,
    MAX_PROMPT_LENGTH,
    MAX_STORED_RESULTS_BYTES,
    MAX_STORED_RESULTS_DEPTH,
    results_shape_problem,
)
from cde_otel.core.model import PHASE_STATUS, PHASES, WORKFLOW_TYPES, Feature, FeatureStatus, Project, ProjectStatus


def invalid(source: str, name: str, expected: str) -> StateError:
    return StateError(
        f"state file {source}: {name} must be {expected}",
        "E204",
        {"path": source, "field": name, "expected": expected, "reason": f"{name} must be {expected}"},
    )


def field(doc: dict[str, Any], name: str, kind: type, source: str) -> Any:
    value = doc.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise invalid(source, name, kind.__name__)
    return value


def _opt_str(doc: dict[str, Any], name: str, source: str) -> str | None:
    value = doc.get(name)
    if value is not None and not isinstance(value, str):
        raise invalid(source, name, "a string or null")
    return value


def _time(doc: dict[str, Any], name: str, source: str) -> datetime:
    parsed = datetime.fromisoformat(field(doc, name, str, source))
    if parsed.tzinfo is None:
        raise invalid(source, name, "a timezone-aware ISO-8601 timestamp")
    return parsed


def _text(doc: dict[str, Any], name: str, source: str, max_length: int) -> str:
    value: str = field(doc, name, str, source)
    if not value.strip() or len(value) > max_length:
        raise invalid(source, name, f"non-empty text of at most {max_length} characters")
    return value


def _id(doc: dict[str, Any], name: str, source: str) -> str:
    value = _text(doc, name, source, MAX_ID_LENGTH)
    if not value.isprintable():
        raise invalid(source, name, "an id of printable characters")
    return value


def _check_artifacts(artifacts: dict[str, Any], source: str) -> None:
    for phase, results in artifacts.items():
        if phase not in PHASES or not isinstance(results, dict):
            raise invalid(source, "artifacts", "a mapping of phase to object")
        problem = results_shape_problem(results, max_depth=MAX_STORED_RESULTS_DEPTH, max_bytes=MAX_STORED_RESULTS_BYTES)
        if problem is not None:
            raise invalid(source, f"artifacts.{phase}", f"results that are not too deep or large (they {problem})")


def _check_history(
    history: list[Any], phase: str, status: FeatureStatus, artifacts: dict[str, Any], source: str
) -> None:
    """The history is the phases before ``phase`` in order (plus ``phase`` once completed); artifacts only for them."""
    if not all(
        isinstance(h, dict) and isinstance(h.get("phase"), str) and isinstance(h.get("completed_at"), str)
        for h in history
    ):
        raise invalid(source, "phase_history", "a list of {phase, completed_at}")
    done = PHASES.index(phase) + (1 if status is FeatureStatus.COMPLETED else 0)
    if [h["phase"] for h in history] != list(PHASES[:done]):
        raise invalid(source, "phase_history", f"the phases completed before {phase!r}, in order")
    if not set(artifacts) <= set(PHASES[:done]):
        raise invalid(source, "artifacts", "results of completed phases only")


def _feature_from(doc: Any, project_id: str, source: str) -> Feature:
    if not isinstance(doc, dict):
        raise invalid(source, "features[]", "an object")
    phase = field(doc, "current_phase", str, source)
    if phase not in PHASES:
        raise invalid(source, "current_phase", f"one of {PHASES}")
    artifacts = field(doc, "artifacts", dict, source)
    _check_artifacts(artifacts, source)
    history = field(doc, "phase_history", list, source)
    workflow_type = field(doc, "workflow_type", str, source)
    if workflow_type not in WORKFLOW_TYPES:
        raise invalid(source, "workflow_type", f"one of {sorted(WORKFLOW_TYPES)}")
    status = FeatureStatus(field(doc, "status", str, source))
    failure_reason = _opt_str(doc, "failure_reason", source)
    if failure_reason is not None and len(failure_reason) > MAX_PROMPT_LENGTH:
        raise invalid(source, "failure_reason", f"at most {MAX_PROMPT_LENGTH} characters")
    _check_status(status, phase, failure_reason, source)
    _check_history(history, phase, status, artifacts, source)
    feature = Feature(
        project_id=project_id,
        prompt=_text(doc, "prompt", source, MAX_PROMPT_LENGTH),
        name=_text(doc, "name", source, MAX_NAME_LENGTH),
        workflow_type=workflow_type,
        id=_id(doc, "id", source),
        status=status,
        current_phase=phase,
        artifacts=artifacts,
        phase_history=history,
        failure_reason=failure_reason,
        created_at=_time(doc, "created_at", source),
        updated_at=_time(doc, "updated_at", source),
    )
    if field(doc, "project_id", str, source) != project_id:
        raise invalid(source, "features[].project_id", "the owning project's id")
    return feature


def _check_status(status: FeatureStatus, phase: str, failure_reason: str | None, source: str) -> None:
    """A feature's status follows its phase: the phase's own status, completed in review, or failed with a reason."""
    if status is FeatureStatus.FAILED:
        if not failure_reason:
            raise invalid(source, "failure_reason", "the reason of a failed feature")
        return
    if failure_reason is not None:
        raise invalid(source, "failure_reason", "null unless the feature failed")
    if status is FeatureStatus.COMPLETED:
        if phase != PHASES[-1]:
            raise invalid(source, "status", f"'completed' only in phase {PHASES[-1]!r}, not {phase!r}")
    elif status is not PHASE_STATUS[phase]:
        raise invalid(source, "status", f"{PHASE_STATUS[phase].value!r} in phase {phase!r}, not {status.value!r}")


def project_from(doc: dict[str, Any], source: str) -> Project:
    project_id = _id(doc, "id", source)
    features_doc = field(doc, "features", list, source)
    features = [_feature_from(f, project_id, source) for f in features_doc]
    if len({f.id for f in features}) != len(features):
        raise invalid(source, "features", "a list with unique ids")
    return Project(
        name=_text(doc, "name", source, MAX_NAME_LENGTH),
        path=_text(doc, "path", source, MAX_PATH_LENGTH),
        id=project_id,
        status=ProjectStatus(field(doc, "status", str, source)),
        features={f.id: f for f in features},
        created_at=_time(doc, "created_at", source),
        updated_at=_time(doc, "updated_at", source),
    )
