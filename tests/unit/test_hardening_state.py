"""Data integrity: state follows its directory, backups keep their identity,
nesting never depends on the caller's stack, recovery never makes things worse, detached
features refuse changes, hand-edited state is validated on load and on save.

Black-box: only the repositories, the model and the files they write are used.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from cde_otel.core import FeatureStatus, FileSystemProjectRepository, Project
from cde_otel.errors import FeatureError, StateError, ValidationError
from cde_otel.testing import simulate_disk_full, simulate_storage_error

T = TypeVar("T")
NewProject = Callable[..., tuple[FileSystemProjectRepository, Project]]  # tests/conftest.py


def state_file(path: Path) -> Path:
    return path / ".cde" / "state.json"


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": True}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


def at_stack_depth(frames: int, call: Callable[[], T]) -> T:
    """Runs ``call`` ``frames`` Python frames deeper than the caller (iteratively built recursion)."""

    def down(remaining: int) -> T:
        return call() if remaining <= 0 else down(remaining - 1)

    return down(frames)


def rewrite_state(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """A hand edit that recomputes the checksum, as the state format documents it (SHA-256 of the canonical body)."""
    document = json.loads(state_file(path).read_text())
    edit(document)
    body = {key: value for key, value in document.items() if key != "checksum"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    document["checksum"] = "sha256:" + hashlib.sha256(canonical).hexdigest()
    state_file(path).write_text(json.dumps(document, indent=2, ensure_ascii=False))


# -- the project's location is the directory it was loaded from ---------------------------------------


def test_a_copied_project_saves_into_its_own_directory(
    tmp_path: Path, new_project: NewProject, caplog: pytest.LogCaptureFixture
) -> None:
    original = tmp_path / "A"
    new_project(original)
    before = state_file(original).read_bytes()
    copy = tmp_path / "B"
    shutil.copytree(original, copy)
    repo = FileSystemProjectRepository()

    with caplog.at_level(logging.WARNING, logger="cde_otel.state"):
        project = repo.get_or_create(copy)
    project.start_feature("only in the copy")
    repo.save(project)

    assert project.path == str(copy.resolve())
    assert state_file(original).read_bytes() == before, "the original was written through the copy"
    reloaded = FileSystemProjectRepository().get_by_path(copy)
    assert reloaded is not None and len(reloaded.features) == 1
    assert json.loads(state_file(copy).read_text())["project"]["path"] == str(copy.resolve())
    assert any(str(original.resolve()) in record.getMessage() for record in caplog.records), "the move is logged"


def test_a_renamed_project_keeps_saving(tmp_path: Path, new_project: NewProject) -> None:
    new_project(tmp_path / "old-name")
    renamed = (tmp_path / "old-name").rename(tmp_path / "new-name")
    repo = FileSystemProjectRepository()

    project = repo.get_or_create(renamed)
    feature = project.start_feature("after the rename")
    repo.save(project)  # E001 today: the stored path no longer exists

    reloaded = FileSystemProjectRepository().get_by_path(renamed)
    assert reloaded is not None and reloaded.get_feature(feature.id).prompt == "after the rename"


# -- a backup belongs to its project --------------------------------------------------------------------


def test_restore_refuses_another_projects_backup(tmp_path: Path, new_project: NewProject) -> None:
    repo_x, _ = new_project(tmp_path / "X")
    repo_y, _ = new_project(tmp_path / "Y", features=2)
    foreign = repo_y.list_backups(tmp_path / "Y")[0]
    shutil.copy(foreign.path, tmp_path / "X" / ".cde" / "backups" / foreign.name)
    x_before, y_before = state_file(tmp_path / "X").read_bytes(), state_file(tmp_path / "Y").read_bytes()

    with pytest.raises(StateError) as caught:
        repo_x.restore_backup(tmp_path / "X", foreign.name)

    assert caught.value.code == "E211"
    assert state_file(tmp_path / "Y").read_bytes() == y_before, "another project was overwritten"
    assert state_file(tmp_path / "X").read_bytes() == x_before


def test_a_lone_backup_can_still_be_restored_into_an_empty_directory(tmp_path: Path, new_project: NewProject) -> None:
    repo, project = new_project(tmp_path / "lost", features=2)
    newest = repo.list_backups(tmp_path / "lost")[0]
    rescue = tmp_path / "rescue"
    (rescue / ".cde" / "backups").mkdir(parents=True)
    shutil.copy(newest.path, rescue / ".cde" / "backups" / newest.name)

    restored = FileSystemProjectRepository().restore_backup(rescue, newest.name)

    assert restored.path == str(rescue.resolve()) and set(restored.features) == set(project.features)
    reloaded = FileSystemProjectRepository().get_by_path(rescue)
    assert reloaded is not None and set(reloaded.features) == set(project.features)


# -- nesting is bounded at the boundary and loading does not depend on the caller's stack ----------------


def test_deeply_nested_results_are_a_coded_error(tmp_path: Path, new_project: NewProject) -> None:
    _, project = new_project(tmp_path, features=1)
    (feature,) = project.features.values()

    with pytest.raises(ValidationError) as caught:
        feature.advance_phase("decompose", nested(1000))

    assert caught.value.code == "E305"
    assert feature.current_phase == "define" and feature.artifacts == {}


def test_oversized_results_are_a_coded_error(tmp_path: Path, new_project: NewProject) -> None:
    _, project = new_project(tmp_path, features=1)
    (feature,) = project.features.values()

    with pytest.raises(ValidationError) as caught:
        feature.advance_phase("decompose", {"blob": "x" * (8 * 1024 * 1024)})

    assert caught.value.code == "E305"
    assert feature.current_phase == "define"


def test_a_valid_state_loads_the_same_from_a_deep_call_stack(tmp_path: Path, new_project: NewProject) -> None:
    repo, project = new_project(tmp_path, features=1)
    (feature,) = project.features.values()
    feature.advance_phase("decompose", nested(60))
    repo.save(project)

    reader = FileSystemProjectRepository()
    loaded = at_stack_depth(sys.getrecursionlimit() - 90, lambda: reader.get_by_path(tmp_path))

    assert loaded is not None and loaded.get_feature(feature.id).current_phase == "decompose"
    assert loaded.get_feature(feature.id).artifacts == feature.artifacts
    assert reader.recoveries == [], "a valid file was 'recovered' from an older backup"


def test_a_deep_state_written_before_the_bound_still_loads_from_any_stack(
    tmp_path: Path, new_project: NewProject
) -> None:
    repo, project = new_project(tmp_path, features=1)
    (feature,) = project.features.values()
    feature.advance_phase("decompose")
    repo.save(project)
    feature.artifacts["define"] = nested(900)  # as an older version let through
    repo.save(project)

    reader = FileSystemProjectRepository()
    loaded = at_stack_depth(400, lambda: reader.get_by_path(tmp_path))

    assert loaded is not None and loaded.get_feature(feature.id).current_phase == "decompose"
    assert reader.recoveries == []


# -- recovery on a full disk never makes things worse ---------------------------------------------------


def test_recovery_on_a_full_disk_leaves_the_state_file_in_place(tmp_path: Path, new_project: NewProject) -> None:
    _, project = new_project(tmp_path, features=3)
    state_file(tmp_path).write_text("garbage")

    with simulate_disk_full():
        recovered = FileSystemProjectRepository().get_by_path(tmp_path)
        assert recovered is not None and recovered.read_only and len(recovered.features) == 3

    assert state_file(tmp_path).exists(), "the corrupt file was moved aside with nothing written in its place"
    # A reader that does not recover (another tool, an older version) must not see "no project yet".
    with pytest.raises(StateError) as caught:
        FileSystemProjectRepository(recover_from_backups=False).get_or_create(tmp_path)
    assert caught.value.code == "E203"
    again = FileSystemProjectRepository().get_or_create(tmp_path)
    assert set(again.features) == set(project.features)


def test_a_recovery_the_full_disk_refused_completes_on_the_first_save_after(
    tmp_path: Path, new_project: NewProject
) -> None:
    _, project = new_project(tmp_path, features=2)
    state_file(tmp_path).write_text("garbage")
    repo = FileSystemProjectRepository(readonly_probe_s=0)
    with simulate_disk_full():
        recovered = repo.get_by_path(tmp_path)
    assert recovered is not None and recovered.read_only

    feature = recovered.start_feature("after the disk was freed")  # the probe ends read-only mode
    repo.save(recovered)

    reloaded = FileSystemProjectRepository(recover_from_backups=False).get_by_path(tmp_path)
    assert reloaded is not None and set(reloaded.features) == {*project.features, feature.id}
    kept = list((tmp_path / ".cde").glob("state.json.corrupt-*"))
    assert kept and all(path.read_bytes() == b"garbage" for path in kept)


# -- a feature dropped by a rollback refuses mutation ----------------------------------------------------


def test_a_feature_detached_by_a_rollback_refuses_changes(tmp_path: Path, new_project: NewProject) -> None:
    repo, project = new_project(tmp_path)
    orphan = project.start_feature("rolled back")
    with simulate_storage_error(errno.EIO), pytest.raises(StateError):
        repo.save(project)
    assert orphan.id not in project.features

    with pytest.raises(FeatureError) as caught:
        orphan.advance_phase("decompose", {"spec": "lost?"})

    assert caught.value.code == "E106"
    assert orphan.current_phase == "define"


# -- hand-edited state is validated on load ---------------------------------------------------------------


def _feature(document: dict[str, Any]) -> dict[str, Any]:
    feature: dict[str, Any] = document["project"]["features"][0]
    return feature


HAND_EDITS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "negative revision": (lambda d: d.update(revision=-3), "E204"),
    "revision zero": (lambda d: d.update(revision=0), "E204"),
    "schema_version 0": (lambda d: d.update(schema_version=0), "E204"),
    "schema_version -1": (lambda d: d.update(schema_version=-1), "E204"),
    "bogus workflow type": (lambda d: _feature(d).update(workflow_type="bogus"), "E204"),
    "status ahead of phase": (lambda d: _feature(d).update(status="testing"), "E204"),
    "completed before review": (lambda d: _feature(d).update(status="completed"), "E204"),
    "bare NaN": (lambda d: _feature(d)["artifacts"].update(define={"score": float("nan")}), "E203"),
    "bare Infinity": (lambda d: _feature(d)["artifacts"].update(define={"score": float("inf")}), "E203"),
}


@pytest.mark.parametrize("edit", sorted(HAND_EDITS))
def test_hand_edited_state_is_refused_on_load(tmp_path: Path, new_project: NewProject, edit: str) -> None:
    new_project(tmp_path, features=1)
    change, code = HAND_EDITS[edit]
    rewrite_state(tmp_path, change)

    with pytest.raises(StateError) as caught:
        FileSystemProjectRepository(recover_from_backups=False).get_by_path(tmp_path)

    assert caught.value.code == code


def test_hand_edited_state_is_recovered_from_a_backup(tmp_path: Path, new_project: NewProject) -> None:
    _, project = new_project(tmp_path, features=1)
    rewrite_state(tmp_path, lambda d: _feature(d).update(status="reviewing"))
    repo = FileSystemProjectRepository()

    loaded = repo.get_by_path(tmp_path)

    assert loaded is not None and [f.status for f in loaded.features.values()] == [FeatureStatus.DEFINING]
    assert [warning.code for warning in repo.recoveries] == ["E208"]
    assert set(loaded.features) == set(project.features)


INVALID_MUTATIONS: dict[str, Callable[[Project], None]] = {
    "bogus workflow type": lambda p: setattr(next(iter(p.features.values())), "workflow_type", "bogus"),
    "status ahead of phase": lambda p: setattr(next(iter(p.features.values())), "status", FeatureStatus.TESTING),
    "NaN artifact": lambda p: next(iter(p.features.values())).artifacts.update(define={"x": float("nan")}),
    "lone surrogate name": lambda p: setattr(p, "name", "bad \udc80"),
}


@pytest.mark.parametrize("mutation", sorted(INVALID_MUTATIONS))
def test_invalid_state_is_refused_on_save(tmp_path: Path, new_project: NewProject, mutation: str) -> None:
    repo, project = new_project(tmp_path, features=1)
    before = state_file(tmp_path).read_bytes()
    INVALID_MUTATIONS[mutation](project)

    with pytest.raises(ValidationError) as caught:
        repo.save(project)

    assert caught.value.code == "E305"
    assert state_file(tmp_path).read_bytes() == before
    assert "NaN" not in state_file(tmp_path).read_text()
