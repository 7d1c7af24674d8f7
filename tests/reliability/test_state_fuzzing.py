"""Fuzzed state files: loading yields a valid project (possibly from a backup) or a coded StateError."""

from __future__ import annotations

import copy
import functools
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cde_otel.core import FileSystemProjectRepository, Project
from cde_otel.core import state as codec
from cde_otel.errors import ERROR_CODES, StateError

pytestmark = pytest.mark.reliability

BACKUP_NAME = "state-r00000002-20250101T000000000000Z.json"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=6,
)


@functools.cache
def template() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        repo = FileSystemProjectRepository()
        project = repo.get_or_create(tmp, name="fuzz")
        project.activate()
        feature = project.start_feature("fuzz me", name="f")
        feature.advance_phase("decompose", {"spec": {"a": [1, 2]}})
        project.start_feature("second").fail("nope")
        repo.save(project)
        return (Path(tmp) / ".cde" / "state.json").read_bytes()


def load(state_bytes: bytes, with_backup: bool) -> tuple[Project | None, FileSystemProjectRepository]:
    with tempfile.TemporaryDirectory() as tmp:
        cde = Path(tmp) / ".cde"
        (cde / "backups").mkdir(parents=True)
        (cde / "state.json").write_bytes(state_bytes)
        if with_backup:
            (cde / "backups" / BACKUP_NAME).write_bytes(template())
        repo = FileSystemProjectRepository()
        try:
            project = repo.get_by_path(tmp)
        except StateError as exc:
            assert exc.code in ERROR_CODES
            assert exc.code.startswith("E2")
            if with_backup:
                raise AssertionError(f"a valid backup existed but load failed: {exc}") from exc
            return None, repo
        assert project is not None
        codec.decode(codec.encode(project, 1), source="re-encoded")  # a loaded project is a valid state
        if repo.recoveries:
            assert repo.recoveries[0].code == "E208"
            expected = codec.decode(template(), source="template")[0]
            expected.path = project.path  # a recovered project lives where it was recovered
            assert project == expected
            assert list(cde.glob("state.json.corrupt-*")), "the bad file is kept"
        return project, repo


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(data=st.binary(max_size=3000), with_backup=st.booleans())
def test_random_bytes(data: bytes, with_backup: bool) -> None:
    load(data, with_backup)


@FUZZ
@given(cut=st.integers(min_value=0), with_backup=st.booleans())
def test_truncations(cut: int, with_backup: bool) -> None:
    raw = template().rstrip()  # cutting only the trailing newline leaves the whole document
    project, repo = load(raw[: cut % len(raw)], with_backup)
    if project is not None:
        assert repo.recoveries, "a truncated state cannot load as itself"


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


@FUZZ
@given(
    data=st.data(),
    action=st.sampled_from(["replace", "delete", "insert"]),
    fix_checksum=st.booleans(),
    with_backup=st.booleans(),
)
def test_json_mutations(data: st.DataObject, action: str, fix_checksum: bool, with_backup: bool) -> None:
    document = json.loads(template())
    mutated = copy.deepcopy(document)
    path = data.draw(st.sampled_from(_paths(document)[1:]), label="path")
    parent = mutated
    for key in path[:-1]:
        parent = parent[key]
    leaf = path[-1]
    if action == "replace":
        parent[leaf] = data.draw(json_values, label="value")
    elif action == "delete":
        del parent[leaf]
    elif isinstance(parent, dict):
        parent[data.draw(st.text(max_size=10), label="key")] = data.draw(json_values, label="value")
    else:
        parent.insert(leaf, data.draw(json_values, label="value"))
    if fix_checksum:  # so the schema validation, not only the checksum, is exercised
        mutated["checksum"] = codec.checksum(mutated)
    load(json.dumps(mutated).encode(), with_backup)
