"""Every method the instrumentor patches, declared once.

A target is ``module:Class.method`` plus the role of ``self`` (how ids are read from it).
The upstream CDE Orchestrator's classes are listed beside ours: they are patched when
``cde_orchestrator`` is importable, even if it is imported after ``instrument()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from cde_otel._exceptions import CDESystemError


class Role(Enum):
    PROJECT = "project"  # self is a Project
    FEATURE = "feature"  # self is a Feature
    STORE = "store"  # self persists projects; a Project may be an argument or the result
    CUSTOM = "custom"  # added by setting: ids are looked for everywhere


@dataclass(frozen=True, slots=True)
class Target:
    module: str
    cls: str
    method: str
    role: Role
    # Derived once: the wrapper reads them on every call.
    qualname: str = field(init=False, compare=False)
    spec: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "qualname", f"{self.cls}.{self.method}")
        object.__setattr__(self, "spec", f"{self.module}:{self.cls}.{self.method}")


def _many(module: str, cls: str, role: Role, *methods: str) -> list[Target]:
    return [Target(module, cls, m, role) for m in methods]


_PROJECT_METHODS = ("start_feature", "activate", "archive", "transition_status")
_FEATURE_METHODS = ("advance_phase", "complete", "fail")

CORE_TARGETS: tuple[Target, ...] = (
    *_many("cde_otel.core.model", "Project", Role.PROJECT, *_PROJECT_METHODS),
    *_many("cde_otel.core.model", "Feature", Role.FEATURE, *_FEATURE_METHODS),
    *_many(
        "cde_otel.core.repository",
        "FileSystemProjectRepository",
        Role.STORE,
        "get_or_create",
        "get_by_path",
        "save",
        "list_backups",
        "restore_backup",
    ),
    # A damaged state repaired from its backups, as its own span inside the load that found it.
    *_many("cde_otel.core._recovery", "StateRecovery", Role.STORE, "recover_locked"),
)

UPSTREAM_TARGETS: tuple[Target, ...] = (
    *_many("cde_orchestrator.domain.entities", "Project", Role.PROJECT, *_PROJECT_METHODS),
    *_many("cde_orchestrator.domain.entities", "Feature", Role.FEATURE, *_FEATURE_METHODS),
    *_many(
        "cde_orchestrator.adapters.filesystem_project_repository",
        "FileSystemProjectRepository",
        Role.STORE,
        "get_or_create",
        "get_by_path",
        "get_by_id",
        "save",
        "list_all",
        "delete",
    ),
    *_many(
        "cde_orchestrator.adapters.state.filesystem_state_repository",
        "FileSystemStateRepository",
        Role.STORE,
        "load_state",
        "save_state",
    ),
)


def parse_target(spec: str) -> Target:
    """Parses a user target ``module:Class.method`` (E903 when malformed)."""
    module, sep, qualname = spec.strip().partition(":")
    cls, dot, method = qualname.partition(".")
    if not (sep and dot and module and cls and method) or "." in method:
        raise CDESystemError(
            f"instrumentation target {spec!r} must look like 'package.module:Class.method'",
            "E903",
            {"setting": "CDE_OTEL_TARGETS", "value": spec, "expected": "module:Class.method"},
        )
    return Target(module, cls, method, Role.CUSTOM)
