"""The single-project CDE domain and its durable file state.

Pure: this package imports no OpenTelemetry and no structlog (an import contract checks
it). Telemetry, logging and health observe it from outside (see
:mod:`cde_otel.instrumentation`). The coded errors it raises are imported from
:mod:`cde_otel.errors`.

    from cde_otel.core import FileSystemProjectRepository

    repo = FileSystemProjectRepository()
    project = repo.get_or_create("/path/to/project")
    project.activate()
    feature = project.start_feature("Add login with OAuth")
    feature.advance_phase("decompose", {"spec": "..."})
    repo.save(project)
"""

from cde_otel.core._confine import ProjectRoots
from cde_otel.core._validation import MAX_ID_LENGTH, MAX_NAME_LENGTH, MAX_PATH_LENGTH, MAX_PROMPT_LENGTH
from cde_otel.core.model import PHASES, WORKFLOW_TYPES, Feature, FeatureStatus, Project, ProjectStatus
from cde_otel.core.repository import BackupInfo, FileSystemProjectRepository, PersistenceGuard

__all__ = [
    "MAX_ID_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_PATH_LENGTH",
    "MAX_PROMPT_LENGTH",
    "PHASES",
    "WORKFLOW_TYPES",
    "BackupInfo",
    "Feature",
    "FeatureStatus",
    "FileSystemProjectRepository",
    "PersistenceGuard",
    "Project",
    "ProjectRoots",
    "ProjectStatus",
]
