"""The data-loss edges of the store: recovery only from the project's own backups, revisions that
continue above every backup, bounded revisions, ids, names and artifacts, a history that agrees
with the phase, and a state file that is not a regular file.

Black-box: only the repositories, the model and the files they write are used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cde_otel.core import FileSystemProjectRepository, Project
from cde_otel.errors import CDEError, StateError, ValidationError

NewProject = Callable[..., tuple[FileSystemProjectRepository, Project]]  # tests/conftest.py
MAX_REVISION = 99_999_999


def state_file(path: Path) -> Path:
    return path / ".cde" / "state.json"


def backups(path: Path) -> list[Path]:
    return sorted((path / ".cde" / "backups").glob("state-r*.json"))


def rewrite(target: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """A hand edit with the checksum recomputed, as the state format documents it (deep edits too)."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)  # writing the deep edit; loading it runs at the usual limit
    try:
        document = json.loads(target.read_text())
        edit(document)
        body = {key: value for key, value in document.items() if key != "checksum"}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        document["checksum"] = "sha256:" + hashlib.sha256(canonical).hexdigest()
        target.write_text(json.dumps(document, indent=2, ensure_ascii=False))
    finally:
        sys.setrecursionlimit(limit)


def break_checksum(path: Path) -> None:
    text = state_file(path).read_text()
    state_file(path).write_text(text.replace('"checksum": "sha256:', '"checksum": "sha256:0'))


def saves(repo: FileSystemProjectRepository, project: Project, count: int) -> None:
    for index in range(count):
        project.start_feature(f"work item {index}")
        repo.save(project)


@pytest.fixture
def two_projects(tmp_path: Path, new_project: NewProject) -> tuple[Path, Project, Path, Project]:
    """Project A (3 saves) and project B (8 saves, so its revisions are higher), with B's newest backup in A's."""
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    repo_a, a = new_project(a_dir, features=1)
    repo_b, b = new_project(b_dir, features=1)
    saves(repo_a, a, 2)
    saves(repo_b, b, 7)
    shutil.copy(backups(b_dir)[-1], a_dir / ".cde" / "backups")
    return a_dir, a, b_dir, b


# -- recovery uses only the project's own backups -------------------------------------------------------------


def test_recovery_skips_a_newer_backup_of_another_project(two_projects: tuple[Path, Project, Path, Project]) -> None:
    a_dir, a, _, b = two_projects
    break_checksum(a_dir)  # the damaged file still names project A
    repo = FileSystemProjectRepository()

    loaded = repo.get_by_path(a_dir)

    assert loaded is not None and loaded.id == a.id != b.id
    assert set(loaded.features) == set(a.features)
    assert [w.code for w in repo.recoveries] == ["E208"]


def test_recovery_of_a_state_that_names_no_project_uses_the_backups_saved_here(
    two_projects: tuple[Path, Project, Path, Project],
) -> None:
    a_dir, a, _, _ = two_projects
    state_file(a_dir).write_bytes(b'{"schema_version": 1, "revis')  # truncated: no project id left

    loaded = FileSystemProjectRepository().get_by_path(a_dir)

    assert loaded is not None and loaded.id == a.id


def test_recovery_with_only_another_projects_backups_refuses_and_goes_read_only(
    two_projects: tuple[Path, Project, Path, Project],
) -> None:
    a_dir, a, _, _ = two_projects
    for own in [b for b in backups(a_dir) if a.id.encode() in b.read_bytes()]:
        own.unlink()
    break_checksum(a_dir)
    damaged = state_file(a_dir).read_bytes()
    repo = FileSystemProjectRepository()

    with pytest.raises(StateError) as caught:
        repo.get_by_path(a_dir)

    assert caught.value.code == "E212"
    assert caught.value.context["foreign_backups"] == 1
    assert state_file(a_dir).read_bytes() == damaged, "the damaged state was replaced"
    assert repo.is_read_only(a_dir) is not None
    with pytest.raises(StateError):
        repo.get_or_create(a_dir)  # no new empty project over the damaged one
    assert state_file(a_dir).read_bytes() == damaged


def test_an_explicit_restore_ends_the_refusal(two_projects: tuple[Path, Project, Path, Project]) -> None:
    a_dir, a, _, _ = two_projects
    own = [b for b in backups(a_dir) if a.id.encode() in b.read_bytes()]
    keep = own[-1].read_bytes()
    for backup in own:
        backup.unlink()
    break_checksum(a_dir)
    repo = FileSystemProjectRepository()
    with pytest.raises(StateError):
        repo.get_by_path(a_dir)
    (a_dir / ".cde" / "backups" / own[-1].name).write_bytes(keep)

    restored = repo.restore_backup(a_dir, own[-1].name)

    assert restored.id == a.id and repo.is_read_only(a_dir) is None


# -- revisions continue above every backup ---------------------------------------------------------------------


def test_saves_after_an_older_copy_replaced_the_state_are_numbered_above_the_backups(
    tmp_path: Path, new_project: NewProject
) -> None:
    repo, project = new_project(tmp_path, features=1)
    saves(repo, project, 5)
    older = backups(tmp_path)[1].read_bytes()  # a `git checkout` of an older state.json
    state_file(tmp_path).write_bytes(older)
    highest = max(int(b.name[7:15]) for b in backups(tmp_path))

    reloaded = FileSystemProjectRepository(backup_retention=3)
    checked_out = reloaded.get_by_path(tmp_path)
    assert checked_out is not None
    new_work = checked_out.start_feature("work done after the checkout")
    reloaded.save(checked_out)

    assert checked_out.revision == highest + 1
    assert any(new_work.id.encode() in b.read_bytes() for b in backups(tmp_path)), "the new save's backup is gone"
    state_file(tmp_path).write_bytes(b"garbage")
    recovered = FileSystemProjectRepository().get_by_path(tmp_path)
    assert recovered is not None and new_work.id in recovered.features, "recovery went back to stale state"


def test_a_revision_beyond_eight_digits_is_refused_on_load(tmp_path: Path, new_project: NewProject) -> None:
    new_project(tmp_path)
    rewrite(state_file(tmp_path), lambda d: d.update(revision=MAX_REVISION + 1))

    with pytest.raises(StateError) as caught:
        FileSystemProjectRepository(recover_from_backups=False).get_by_path(tmp_path)

    assert caught.value.code == "E204"


def test_saving_past_the_highest_revision_is_refused(tmp_path: Path, new_project: NewProject) -> None:
    new_project(tmp_path)
    rewrite(state_file(tmp_path), lambda d: d.update(revision=MAX_REVISION))
    repo = FileSystemProjectRepository()
    project = repo.get_by_path(tmp_path)
    assert project is not None
    before = state_file(tmp_path).read_bytes()
    project.start_feature("one more")

    with pytest.raises(StateError) as caught:
        repo.save(project)

    assert caught.value.code == "E213"
    assert state_file(tmp_path).read_bytes() == before


# -- bounded and consistent on load and on save ---------------------------------------------------------------


def _feature(document: dict[str, Any]) -> dict[str, Any]:
    feature: dict[str, Any] = document["project"]["features"][0]
    return feature


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": True}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


HAND_EDITS: dict[str, Callable[[dict[str, Any]], None]] = {
    "empty project name": lambda d: d["project"].update(name=""),
    "200,000-char project name": lambda d: d["project"].update(name="n" * 200_000),
    "empty project id": lambda d: d["project"].update(id=""),
    "empty feature id": lambda d: _feature(d).update(id=""),
    "200,000-char feature name": lambda d: _feature(d).update(name="n" * 200_000),
    "feature id with a line break": lambda d: _feature(d).update(id="abc\ndef"),
    "history ahead of the phase": lambda d: _feature(d).update(
        phase_history=[{"phase": "define", "completed_at": "2026-01-01T00:00:00+00:00"}]
    ),
    "history behind the phase": lambda d: _feature(d).update(current_phase="design", status="designing"),
    "artifacts of a phase not done": lambda d: _feature(d)["artifacts"].update(review={"done": True}),
    "1,100-deep artifacts": lambda d: _feature(d)["artifacts"].update(define=_nested(1100)),
}


@pytest.mark.parametrize("edit", sorted(HAND_EDITS))
def test_hand_edited_state_out_of_bounds_is_refused_on_load(tmp_path: Path, new_project: NewProject, edit: str) -> None:
    repo, project = new_project(tmp_path, features=1)
    if edit == "1,100-deep artifacts":  # artifacts of define need define done
        next(iter(project.features.values())).advance_phase("decompose")
        repo.save(project)
    rewrite(state_file(tmp_path), HAND_EDITS[edit])

    with pytest.raises(StateError) as caught:
        FileSystemProjectRepository(recover_from_backups=False).get_by_path(tmp_path)

    assert caught.value.code == "E204"


MUTATIONS: dict[str, Callable[[Project], None]] = {
    "empty name": lambda p: setattr(p, "name", ""),
    "200,000-char name": lambda p: setattr(p, "name", "n" * 200_000),
    "empty feature id": lambda p: setattr(next(iter(p.features.values())), "id", ""),
    "history that contradicts the phase": lambda p: next(iter(p.features.values())).phase_history.append(
        {"phase": "design", "completed_at": "2026-01-01T00:00:00+00:00"}
    ),
    "1,100-deep artifacts": lambda p: next(iter(p.features.values())).artifacts.update(define=_nested(1100)),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_state_out_of_bounds_is_refused_on_save(tmp_path: Path, new_project: NewProject, mutation: str) -> None:
    repo, project = new_project(tmp_path, features=1)
    before = state_file(tmp_path).read_bytes()
    MUTATIONS[mutation](project)

    with pytest.raises(ValidationError) as caught:
        repo.save(project)

    assert caught.value.code == "E305"
    assert state_file(tmp_path).read_bytes() == before


def test_a_state_of_every_phase_still_loads(tmp_path: Path, new_project: NewProject) -> None:
    repo, project = new_project(tmp_path, features=3)
    done, failed, _ = project.features.values()
    for phase in ("decompose", "design", "implement", "test", "review"):
        done.advance_phase(phase, {"work": phase})
    done.complete({"approved": True})
    failed.advance_phase("decompose")
    failed.fail("abandoned")
    repo.save(project)

    loaded = FileSystemProjectRepository(recover_from_backups=False).get_by_path(tmp_path)

    assert loaded == project


# -- a state file that is not a regular file -------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_a_fifo_in_place_of_the_state_is_refused_without_blocking(tmp_path: Path, new_project: NewProject) -> None:
    new_project(tmp_path)
    state_file(tmp_path).unlink()
    os.mkfifo(state_file(tmp_path))
    outcome: list[BaseException | object] = []

    def load() -> None:
        try:
            outcome.append(FileSystemProjectRepository().get_by_path(tmp_path))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():  # unblock the reader so the test process does not keep a stuck thread
        with open(state_file(tmp_path), "wb"):
            pass
        pytest.fail("loading a FIFO state blocked")

    (error,) = outcome
    assert isinstance(error, CDEError) and error.code == "E214"
