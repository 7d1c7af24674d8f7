"""Properties: whatever text or JSON a caller passes, the result is either a coded
error with nothing changed, or a value that saves and reloads equal; a feature once saved is
never lost.

Each example writes real files (fsync included), so example counts are kept modest.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cde_otel.core import FileSystemProjectRepository, Project
from cde_otel.errors import ERROR_CODES, CDEError, ValidationError

pytestmark = pytest.mark.reliability

PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any code point, surrogates included, and the odd huge or empty string.
lone_surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"])
any_text = st.one_of(
    st.text(st.characters() | lone_surrogates, max_size=40),
    st.sampled_from(["", " ", "\x00", "\udc80", "a\ud800b", "x" * 100_001, "\n\n", "💥" * 3]),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    any_text,
)
json_like = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)


def _nest(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


deep = st.integers(min_value=1, max_value=1500).map(_nest)


@contextmanager
def fresh_project() -> Iterator[tuple[FileSystemProjectRepository, Project, Path]]:
    with tempfile.TemporaryDirectory(prefix="cde-prop-") as tmp:
        repo = FileSystemProjectRepository()
        project = repo.get_or_create(tmp)
        project.activate()
        repo.save(project)
        yield repo, project, Path(tmp)


def reload(path: Path) -> Project:
    loaded = FileSystemProjectRepository(recover_from_backups=False).get_by_path(path)
    assert loaded is not None
    return loaded


def assert_coded(error: BaseException) -> None:
    assert isinstance(error, CDEError), f"{type(error).__name__}: {error}"
    assert error.code in ERROR_CODES


@PROPERTY
@given(prompt=any_text, name=st.none() | any_text, reason=any_text)
def test_any_text_is_stored_exactly_or_refused_with_a_code(prompt: str, name: str | None, reason: str) -> None:
    with fresh_project() as (repo, project, path):
        try:
            feature = project.start_feature(prompt, name=name)
        except Exception as error:  # the property is about which errors
            assert_coded(error)
            assert isinstance(error, ValidationError) and project.features == {}
            return
        try:
            feature.fail(reason)
        except Exception as error:
            assert_coded(error)
            assert feature.failure_reason is None
        repo.save(project)
        loaded = reload(path).get_feature(feature.id)
        expected = (feature.prompt, feature.name, feature.failure_reason)
        assert (loaded.prompt, loaded.name, loaded.failure_reason) == expected


@PROPERTY
@given(results=st.dictionaries(any_text, json_like, max_size=5) | deep | json_like)
def test_any_json_artifact_round_trips_or_is_refused_with_a_code(results: Any) -> None:
    with fresh_project() as (repo, project, path):
        feature = project.start_feature("artifacts")
        repo.save(project)
        try:
            feature.advance_phase("decompose", results)
        except Exception as error:
            assert_coded(error)
            assert feature.current_phase == "define" and feature.artifacts == {}
            return
        repo.save(project)
        loaded = reload(path).get_feature(feature.id)
        assert loaded.current_phase == "decompose"
        assert loaded.artifacts == feature.artifacts
        if isinstance(results, dict) and all(isinstance(k, str) for k in results):
            assert loaded.artifacts["define"] == results


operations = st.lists(
    st.one_of(
        st.tuples(st.just("start"), any_text),
        st.tuples(st.just("advance"), json_like),
        st.tuples(st.just("fail"), any_text),
        st.tuples(st.just("save"), st.none()),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=operations)
def test_a_saved_feature_is_never_lost(steps: list[tuple[str, Any]]) -> None:
    with fresh_project() as (repo, project, path):
        saved: set[str] = set()
        for kind, argument in steps:
            try:
                if kind == "start":
                    project.start_feature(argument)
                elif kind == "advance" and project.features:
                    feature = list(project.features.values())[-1]
                    feature.advance_phase(_next_phase(feature.current_phase), argument)
                elif kind == "fail" and project.features:
                    list(project.features.values())[-1].fail(argument)
                elif kind == "save":
                    repo.save(project)
                    saved = set(project.features)
            except Exception as error:
                assert_coded(error)
            assert saved <= set(project.features), "a saved feature disappeared from the project"
        repo.save(project)
        assert set(reload(path).features) == set(project.features) >= saved


def _next_phase(current: str) -> str:
    order = ["define", "decompose", "design", "implement", "test", "review"]
    return order[min(order.index(current) + 1, len(order) - 1)]
