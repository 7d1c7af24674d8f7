"""The single-project CDE domain and its durable file state.

Pure: this package imports no OpenTelemetry and no structlog. Telemetry, logging
and health observe it from outside (see :mod:`cde_otel.instrumentation`).

    from cde_otel.core import FileSystemProjectRepository

    repo = FileSystemProjectRepository()
    project = repo.get_or_create("/path/to/project")
    project.activate()
    feature = project.start_feature("Add login with OAuth")
    feature.advance_phase("decompose", {"spec": "..."})
    repo.save(project)
"""

from cde_otel.core.errors import (
    ERROR_CODES,
    CDEError,
    CDESystemError,
    CircuitBreakerOpenError,
    ErrorCode,
    FeatureError,
    ProjectError,
    ReadOnlyModeError,
    Severity,
    StateError,
    ValidationError,
)
from cde_otel.core.model import PHASES, WORKFLOW_TYPES, Feature, FeatureStatus, Project, ProjectStatus
from cde_otel.core.repository import BackupInfo, FileSystemProjectRepository, PersistenceGuard

__all__ = [
    "ERROR_CODES",
    "PHASES",
    "WORKFLOW_TYPES",
    "BackupInfo",
    "CDEError",
    "CDESystemError",
    "CircuitBreakerOpenError",
    "ErrorCode",
    "Feature",
    "FeatureError",
    "FeatureStatus",
    "FileSystemProjectRepository",
    "PersistenceGuard",
    "Project",
    "ProjectError",
    "ProjectStatus",
    "ReadOnlyModeError",
    "Severity",
    "StateError",
    "ValidationError",
]
