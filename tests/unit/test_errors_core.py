"""The coded-error foundation (PROD-01): hierarchy, registry, context capture, serialisation."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import pytest

from cde_otel.core import FileSystemProjectRepository
from cde_otel.core import state as state_codec
from cde_otel.errors import (
    ERROR_CODES,
    CDEError,
    CDESystemError,
    CircuitBreakerOpenError,
    FeatureError,
    ProjectError,
    ReadOnlyModeError,
    Severity,
    StateError,
    ValidationError,
    error_for,
)


def _all_subclasses(cls: type[CDEError]) -> set[type[CDEError]]:
    found: set[type[CDEError]] = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_all_subclasses(sub)}
    return found


def test_custom_exceptions_hierarchy() -> None:
    ranges = {ProjectError: (1, 99), FeatureError: (100, 199), StateError: (200, 299),
              ValidationError: (300, 399), CDESystemError: (900, 999)}  # fmt: skip
    for cls, code_range in ranges.items():
        assert issubclass(cls, CDEError)
        assert cls.code_range == code_range
    assert issubclass(ReadOnlyModeError, StateError)
    assert issubclass(CircuitBreakerOpenError, CDESystemError)
    assert issubclass(CDEError, Exception)
    assert [s.value for s in Severity] == ["INFO", "WARNING", "ERROR", "CRITICAL"]
    # A class cannot carry a code of another range, nor an unregistered one.
    with pytest.raises(TypeError):
        ProjectError("wrong family", "E101")
    with pytest.raises(TypeError):
        ProjectError("not registered", "E099")


def test_error_codes_unique() -> None:
    assert ERROR_CODES, "the registry is empty"
    names = [spec.name for spec in ERROR_CODES.values()]
    assert len(names) == len(set(names)), "error names must be unique"
    for key, spec in ERROR_CODES.items():
        assert key == spec.code
        assert re.fullmatch(r"E\d{3}", spec.code), spec.code
        low, high = spec.exception.code_range
        assert low <= spec.number <= high, f"{spec.code} is outside {spec.exception.__name__}'s range"
        assert spec.summary.strip(), f"{spec.code} has no summary"
        built = error_for(spec.code, path="/x")
        assert type(built) is spec.exception
        assert (built.severity, built.recoverable, built.context) == (spec.severity, spec.recoverable, {"path": "/x"})
    used = {spec.exception for spec in ERROR_CODES.values()}
    for cls in _all_subclasses(CDEError):
        if cls.__module__.startswith("cde_otel."):
            assert any(issubclass(u, cls) for u in used), f"{cls.__name__} has no codes"


def test_error_context_capture(tmp_path: Path) -> None:
    repo = FileSystemProjectRepository()
    project = repo.get_or_create(tmp_path)
    with pytest.raises(FeatureError) as caught:
        project.start_feature("Add a login page")
    data = caught.value.to_dict()

    assert data["code"] == "E101"
    assert data["context"]["status"] == "onboarding"
    assert data["snapshot"] == {"project_id": project.id, "status": "onboarding", "features": 0}
    operations = [crumb["operation"] for crumb in data["breadcrumbs"]]
    assert operations[-1] == "Project.start_feature"
    assert "FileSystemProjectRepository.save" in operations
    assert any("start_feature" in frame for frame in data["stack"])

    project.activate()
    feature = project.start_feature("Add a login page")
    with pytest.raises(FeatureError) as skipped:
        feature.advance_phase("design")
    assert skipped.value.to_dict()["snapshot"] == {"feature_id": feature.id, "status": "defining", "phase": "define"}


def test_error_to_json_serialization() -> None:
    with pytest.raises(StateError) as caught:
        state_codec.decode(b"{ not json", source="/p/.cde/state.json")
    error = caught.value

    data = json.loads(json.dumps(error.to_dict()))
    assert data["code"] == "E203"
    assert data["recoverable"] is False
    assert data["causes"][0]["type"] == "JSONDecodeError"
    assert data["timestamp"].endswith("+00:00")

    # A CDE cause keeps its code in the chain.
    try:
        try:
            raise error
        except StateError as inner:
            raise CDESystemError("wrapped", "E902", {"when": Path("/p"), "severity": Severity.ERROR}) from inner
    except CDESystemError as outer:
        chained = json.loads(json.dumps(outer.to_dict()))
    assert chained["causes"][0] == {"type": "StateError", "message": "[E203] " + error.message, "code": "E203"}
    assert chained["context"] == {"when": repr(Path("/p")), "severity": "ERROR"}

    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is StateError
    assert (restored.code, restored.message, restored.context, restored.recoverable) == (
        error.code, error.message, error.context, error.recoverable,
    )  # fmt: skip
