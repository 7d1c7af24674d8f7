"""The foundation's persistence contract: round-trip, atomicity, conflicts, backups, validation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cde_otel.core import PHASES, FileSystemProjectRepository, Project
from cde_otel.core import state as state_codec
from cde_otel.core.state import state_paths
from cde_otel.errors import ProjectError, StateError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
feature_plans = st.lists(
    st.tuples(
        st.text(min_size=1, max_size=40).filter(str.strip),  # prompt
        st.sampled_from(["default", "quick-fix", "research", "documentation", "refactor", "hotfix"]),
        st.integers(0, len(PHASES) - 1),  # phases advanced
        st.sampled_from(["open", "complete", "fail"]),
        st.dictionaries(st.text(max_size=8), json_values, max_size=3),  # results of each phase
    ),
    max_size=5,
)


def build_project(repo: FileSystemProjectRepository, path: Path, status: str, plans: list) -> Project:  # type: ignore[type-arg]
    project = repo.get_or_create(path, name="round trip")
    project.activate()
    for prompt, workflow, advanced, end, results in plans:
        feature = project.start_feature(prompt, workflow_type=workflow)
        for phase in PHASES[1 : advanced + 1]:
            feature.advance_phase(phase, results)
        if end == "complete" and feature.current_phase == "review":
            feature.complete(results)
        elif end == "fail":
            feature.fail("gave up")
    if status == "archived":
        project.archive()
    return project


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(status=st.sampled_from(["active", "archived"]), plans=feature_plans)
def test_round_trip_any_valid_project(status: str, plans: list) -> None:  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory() as tmp:
        repo = FileSystemProjectRepository()
        project = build_project(repo, Path(tmp), status, plans)
        repo.save(project)
        loaded = FileSystemProjectRepository().get_by_path(tmp)
        assert loaded is not None
        assert loaded == project
        assert loaded.to_dict() == project.to_dict()
        assert loaded.revision == project.revision == 2
        for feature in loaded.features.values():
            assert loaded.get_feature(feature.id).current_phase == project.get_feature(feature.id).current_phase


def test_get_or_create_missing_dir_is_e001() -> None:
    with pytest.raises(ProjectError) as caught:
        FileSystemProjectRepository().get_or_create("/invalid")
    assert caught.value.code == "E001"
    assert caught.value.context["path"] == "/invalid"
    assert caught.value.recoverable is False


def test_get_or_create_creates_then_loads(tmp_path: Path) -> None:
    repo = FileSystemProjectRepository()
    assert repo.get_by_path(tmp_path) is None
    created = repo.get_or_create(tmp_path, name="demo")
    assert created.revision == 1
    assert (tmp_path / ".cde" / "state.json").is_file()
    again = FileSystemProjectRepository().get_or_create(tmp_path)
    assert again == created
    assert again.name == "demo"


def test_state_file_is_schema_versioned_and_checksummed(tmp_path: Path) -> None:
    repo = FileSystemProjectRepository()
    repo.get_or_create(tmp_path)
    document = json.loads((tmp_path / ".cde" / "state.json").read_text())
    assert document["schema_version"] == state_codec.SCHEMA_VERSION
    assert document["checksum"] == state_codec.checksum(document)
    assert document["revision"] == 1


def test_conflict_is_recoverable_and_force_overwrites(tmp_path: Path) -> None:
    first = FileSystemProjectRepository().get_or_create(tmp_path)
    second = FileSystemProjectRepository().get_or_create(tmp_path)
    first.activate()
    FileSystemProjectRepository().save(first)
    second.name = "theirs"
    repo = FileSystemProjectRepository()
    with pytest.raises(StateError) as caught:
        repo.save(second)
    assert caught.value.code == "E202"
    assert caught.value.recoverable is True
    assert caught.value.context["expected_revision"] == 1
    assert caught.value.context["found_revision"] == 2
    assert second.name == "theirs"  # a conflict leaves the caller's changes for it to resolve
    repo.save(second, force=True)
    on_disk = FileSystemProjectRepository().get_by_path(tmp_path)
    assert on_disk is not None
    assert on_disk.name == "theirs"
    assert on_disk.revision == 3


def test_atomic_write_leaves_old_or_new(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = FileSystemProjectRepository()
    project = repo.get_or_create(tmp_path)
    old = (tmp_path / ".cde" / "state.json").read_bytes()
    project.activate()

    def crash_before_rename(src: object, dst: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("cde_otel.core.storage.os.replace", crash_before_rename)
    with pytest.raises(StateError) as caught:
        repo.save(project)
    monkeypatch.undo()
    assert caught.value.code == "E201"
    assert (tmp_path / ".cde" / "state.json").read_bytes() == old
    assert not list((tmp_path / ".cde").glob(".*.tmp")), "the temp file is cleaned up"
    project.activate()
    repo.save(project)
    new = json.loads((tmp_path / ".cde" / "state.json").read_text())
    assert new["project"]["status"] == "active"


def test_stale_temp_files_from_crashed_writers_are_swept(tmp_path: Path) -> None:
    repo = FileSystemProjectRepository()
    project = repo.get_or_create(tmp_path)
    leftover = tmp_path / ".cde" / ".state.json.999.dead.tmp"
    leftover.write_bytes(b"half a state")
    repo.save(project)
    assert not leftover.exists()


def test_backups_are_checksummed_and_bounded(tmp_path: Path) -> None:
    repo = FileSystemProjectRepository(backup_retention=3)
    project = repo.get_or_create(tmp_path)
    for i in range(6):
        project.name = f"v{i}"
        repo.save(project)
    backups = repo.list_backups(tmp_path)
    assert [b.revision for b in backups] == [7, 6, 5]
    for backup in backups:
        document = json.loads(backup.path.read_bytes())
        assert document["checksum"] == state_codec.checksum(document)
        assert backup.size_bytes == backup.path.stat().st_size
    assert repo.load_backup(tmp_path, backups[0].name).name == "v5"
    assert repo.load_backup(tmp_path, backups[-1].name).name == "v3"


def test_backup_not_found_or_damaged_is_e209(tmp_path: Path) -> None:
    repo = FileSystemProjectRepository()
    repo.get_or_create(tmp_path)
    with pytest.raises(StateError) as caught:
        repo.load_backup(tmp_path, "state-r00000042-20250101T000000000000Z.json")
    assert caught.value.code == "E209"
    backup = repo.list_backups(tmp_path)[0]
    backup.path.write_bytes(backup.path.read_bytes().replace(b'"name"', b'"nome"', 1))
    with pytest.raises(StateError) as caught:
        repo.load_backup(tmp_path, backup.name)
    assert caught.value.code == "E209"


def test_restore_backup_makes_it_current_as_new_revision(tmp_path: Path) -> None:
    repo = FileSystemProjectRepository()
    project = repo.get_or_create(tmp_path, name="first")
    project.name = "second"
    repo.save(project)
    oldest = repo.list_backups(tmp_path)[-1]
    restored = repo.restore_backup(tmp_path, oldest.name)
    assert restored.name == "first"
    assert restored.revision == 3
    loaded = FileSystemProjectRepository().get_by_path(tmp_path)
    assert loaded is not None
    assert loaded.name == "first"


def write_document(tmp_path: Path, mutate: object) -> None:
    repo = FileSystemProjectRepository()
    repo.get_or_create(tmp_path)
    _, state_file, _ = state_paths(tmp_path)
    document = json.loads(state_file.read_text())
    mutate(document)
    document["checksum"] = state_codec.checksum(document)
    state_file.write_text(json.dumps(document))


@pytest.mark.parametrize(
    ("damage", "code"),
    [
        (lambda p: p.write_bytes(b"{not json"), "E203"),
        (lambda p: p.write_bytes(p.read_bytes()[:40]), "E203"),
        (lambda p: p.write_bytes(b"\xff\xfe\x00"), "E203"),
        (lambda p: p.write_bytes(p.read_bytes().replace(b'"onboarding"', b'"active"')), "E203"),  # checksum
    ],
)
def test_unparseable_state_is_e203_without_recovery(
    tmp_path: Path, damage: Callable[[Path], object], code: str
) -> None:
    repo = FileSystemProjectRepository(recover_from_backups=False)
    repo.get_or_create(tmp_path)
    _, state_file, _ = state_paths(tmp_path)
    damage(state_file)
    with pytest.raises(StateError) as caught:
        repo.get_by_path(tmp_path)
    assert caught.value.code == code
    assert caught.value.context["path"] == str(state_file)
    with pytest.raises(StateError):
        repo.get_or_create(tmp_path)  # never silently replaced by a new empty project


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["project"].pop("name"),
        lambda d: d["project"].update(status="paused"),
        lambda d: d.update(revision="three"),
        lambda d: d["project"].update(features=[{"id": 1}]),
        lambda d: d["project"].update(created_at="yesterday"),
    ],
)
def test_schema_invalid_state_is_e204(tmp_path: Path, mutate: Callable[[dict[str, Any]], object]) -> None:
    write_document(tmp_path, mutate)
    with pytest.raises(StateError) as caught:
        FileSystemProjectRepository(recover_from_backups=False).get_by_path(tmp_path)
    assert caught.value.code == "E204"


def test_newer_schema_is_e205(tmp_path: Path) -> None:
    write_document(tmp_path, lambda d: d.update(schema_version=state_codec.SCHEMA_VERSION + 1))
    with pytest.raises(StateError) as caught:
        FileSystemProjectRepository(recover_from_backups=False).get_by_path(tmp_path)
    assert caught.value.code == "E205"
    assert caught.value.context["schema_version"] == state_codec.SCHEMA_VERSION + 1


def test_save_into_vanished_directory_is_e001(tmp_path: Path) -> None:
    project = Project(name="ghost", path=str(tmp_path / "gone"))
    with pytest.raises(ProjectError) as caught:
        FileSystemProjectRepository().save(project)
    assert caught.value.code == "E001"


def test_core_imports_no_opentelemetry_or_structlog() -> None:
    code = (
        "import sys, cde_otel.core, cde_otel.core.repository;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('opentelemetry', 'structlog'));"
        "print(','.join(bad))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDE_OTEL_", "OTEL_"))}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert result.stdout.strip() == ""
