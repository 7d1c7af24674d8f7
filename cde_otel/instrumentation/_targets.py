"""Every method the instrumentor patches, declared once, with what the wrapper reads from its calls.

A target is ``module:Class.method``, the role of ``self`` (how ids are read from it), the
attribute extractors of its role and method (:mod:`._extractors`: the prompt's length of
``start_feature``, the requested phase of ``advance_phase``), and what the call does to the
state: ``writes`` (its first state argument is persisted) or ``settles`` (it ends a feature).
The generic wrapper knows no method name. The upstream CDE Orchestrator's classes are listed
beside ours: they are patched when ``cde_orchestrator`` is importable, even if it is imported
after ``instrument()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from cde_otel._exceptions import CDESystemError
from cde_otel.instrumentation._extractors import (
    Extractor,
    feature_attrs,
    found_ids,
    next_phase_attrs,
    project_attrs,
    prompt_attrs,
    stored_ids,
)


class Role(Enum):
    PROJECT = "project"  # self is a Project
    FEATURE = "feature"  # self is a Feature
    STORE = "store"  # self persists projects; a Project may be an argument or the result
    CUSTOM = "custom"  # added by setting: ids are looked for everywhere


#: What every call of a role reads (its method's own extractors come after).
ROLE_EXTRACTORS: dict[Role, tuple[Extractor, ...]] = {
    Role.PROJECT: (project_attrs,),
    Role.FEATURE: (feature_attrs,),
    Role.STORE: (stored_ids,),
    Role.CUSTOM: (found_ids,),
}


@dataclass(frozen=True, slots=True)
class Target:
    module: str
    cls: str
    method: str
    role: Role
    extractors: tuple[Extractor, ...] = field(default=(), compare=False)  # beyond the role's
    # A store call persisting its first state argument / a feature call ending the feature; by
    # default from the method's name (``save``, ``save_state`` / ``complete``, ``fail``).
    writes: bool | None = field(default=None, compare=False)
    settles: bool | None = field(default=None, compare=False)
    # Derived once: the wrapper reads them on every call.
    qualname: str = field(init=False, compare=False)
    spec: str = field(init=False, compare=False)
    begin_extractors: tuple[Extractor, ...] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "qualname", f"{self.cls}.{self.method}")
        object.__setattr__(self, "spec", f"{self.module}:{self.cls}.{self.method}")
        object.__setattr__(self, "begin_extractors", ROLE_EXTRACTORS[self.role] + self.extractors)
        if self.writes is None:
            object.__setattr__(self, "writes", self.role is Role.STORE and self.method in _WRITES)
        if self.settles is None:
            object.__setattr__(self, "settles", self.role is Role.FEATURE and self.method in _SETTLES)

    @property
    def attribute(self) -> str:
        """The patched attribute of the module (the instrumentor base's name for it)."""
        return self.qualname


def _many(module: str, cls: str, role: Role, *methods: str) -> list[Target]:
    return [_target(module, cls, role, m) for m in methods]


def _target(module: str, cls: str, role: Role, method: str) -> Target:
    return Target(module, cls, method, role, _METHOD_EXTRACTORS.get(method, ()))


_PROJECT_METHODS = ("start_feature", "activate", "archive", "transition_status")
_FEATURE_METHODS = ("advance_phase", "complete", "fail")
_METHOD_EXTRACTORS: dict[str, tuple[Extractor, ...]] = {
    "start_feature": (prompt_attrs,),
    "advance_phase": (next_phase_attrs,),
}
_WRITES = frozenset({"save", "save_state"})
_SETTLES = frozenset({"complete", "fail"})

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
