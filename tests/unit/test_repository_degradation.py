"""Read-only mode, rollback and recovery from backups in the core repository (PROD-05.1/05.3)."""

from __future__ import annotations

import errno
import json
import logging
from pathlib import Path

import pytest

from cde_otel.core import FileSystemProjectRepository
from cde_otel.core.state import state_paths
from cde_otel.errors import ReadOnlyModeError, StateError
from cde_otel.testing import ManualClock, simulate_disk_full, simulate_storage_error


@pytest.fixture
def repo(clock: ManualClock) -> FileSystemProjectRepository:
    return FileSystemProjectRepository(readonly_probe_s=5.0, clock=clock)


def active_project(repo: FileSystemProjectRepository, path: Path):  # type: ignore[no-untyped-def]
    project = repo.get_or_create(path)
    project.activate()
    repo.save(project)
    return project


def test_read_only_mode_blocks_mutations(tmp_path: Path) -> None:
    seeded = FileSystemProjectRepository().get_or_create(tmp_path)
    seeded.activate()
    FileSystemProjectRepository().save(seeded)
    repo = FileSystemProjectRepository()
    with simulate_disk_full():
        project = repo.get_or_create(tmp_path)
        assert project.read_only is True
        assert "ENOSPC" in (project.read_only_reason or "")
        with pytest.raises(ReadOnlyModeError) as caught:
            project.start_feature("...")
        assert caught.value.code == "E207"
        with pytest.raises(ReadOnlyModeError):
            repo.save(project)
    # queries still work
    assert project.get_active_features() == []
    assert project.status.value == "active"
    assert repo.read_only_projects == {str(tmp_path.resolve()): project.read_only_reason}
    assert repo.is_read_only(tmp_path) == project.read_only_reason
    assert FileSystemProjectRepository().is_read_only(tmp_path) is None


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT])
def test_failed_save_enters_read_only_and_rolls_back(
    repo: FileSystemProjectRepository, tmp_path: Path, err: int
) -> None:
    project = active_project(repo, tmp_path)
    on_disk = state_paths(tmp_path)[1].read_bytes()
    feature = project.start_feature("will not persist")
    with simulate_storage_error(err), pytest.raises(ReadOnlyModeError) as caught:
        repo.save(project)
    error = caught.value
    assert error.code == "E207"
    assert isinstance(error.__cause__, StateError)
    assert error.__cause__.code == "E210"
    assert error.context["errno"] == errno.errorcode[err]
    assert project.read_only is True
    assert feature.id not in project.features  # in-memory rollback
    assert state_paths(tmp_path)[1].read_bytes() == on_disk  # file left at the last good version
    with pytest.raises(ReadOnlyModeError):
        project.start_feature("still refused")
    # other readers see the same state, and this repository keeps reporting it read-only
    again = repo.get_by_path(tmp_path)
    assert again is not None
    assert again.read_only is True
    assert again.features == {}


def test_read_only_ends_when_probe_succeeds(
    repo: FileSystemProjectRepository, clock: ManualClock, tmp_path: Path
) -> None:
    project = active_project(repo, tmp_path)
    project.start_feature("first try")
    with simulate_disk_full(), pytest.raises(ReadOnlyModeError):
        repo.save(project)
    # storage back, but the probe is rate-limited: not yet
    assert repo.ensure_writable(project) is False
    with pytest.raises(ReadOnlyModeError):
        repo.save(project)
    clock.now += 5.0
    with simulate_disk_full():
        assert repo.ensure_writable(project) is False  # probe due, still failing
    clock.now += 5.0
    assert repo.ensure_writable(project) is True
    assert project.read_only is False
    assert project.read_only_reason is None
    assert repo.read_only_projects == {}
    assert repo.is_read_only(tmp_path) is None
    project.start_feature("second try")
    repo.save(project)
    loaded = FileSystemProjectRepository().get_by_path(tmp_path)
    assert loaded is not None
    assert [f.prompt for f in loaded.features.values()] == ["second try"]
    assert not list((tmp_path / ".cde").glob(".*probe*")), "probe files are removed"


def test_save_probes_by_itself_once_due(repo: FileSystemProjectRepository, clock: ManualClock, tmp_path: Path) -> None:
    project = active_project(repo, tmp_path)
    with simulate_disk_full(), pytest.raises(ReadOnlyModeError):
        repo.save(project)
    clock.now += 6
    repo.save(project)  # the probe succeeds, read-only ends, the save goes through
    assert project.read_only is False
    assert project.revision == 3


def test_explicit_probe(repo: FileSystemProjectRepository, tmp_path: Path) -> None:
    project = active_project(repo, tmp_path)
    with simulate_storage_error(errno.EROFS):
        assert repo.probe(project) is False
    assert project.read_only is True
    assert "EROFS" in (project.read_only_reason or "")
    with simulate_storage_error(errno.EIO):
        assert repo.probe(project) is False  # not a storage-unavailable errno: flag unchanged
    assert project.read_only is True
    assert repo.probe(project) is True
    assert project.read_only is False


def test_new_project_that_cannot_be_persisted_is_read_only_in_memory(
    repo: FileSystemProjectRepository, clock: ManualClock, tmp_path: Path
) -> None:
    with simulate_disk_full():
        project = repo.get_or_create(tmp_path, name="fresh")
    assert project.read_only is True
    assert project.name == "fresh"
    assert project.revision == 0
    assert not state_paths(tmp_path)[1].exists()
    clock.now += 10
    repo.save(project)  # storage is back: the first save persists it
    assert project.revision == 1
    loaded = FileSystemProjectRepository().get_by_path(tmp_path)
    assert loaded is not None
    assert loaded.name == "fresh"


def test_non_storage_failure_rolls_back_without_read_only(repo: FileSystemProjectRepository, tmp_path: Path) -> None:
    project = active_project(repo, tmp_path)
    feature = project.start_feature("first")
    repo.save(project)
    feature.advance_phase("decompose", {"plan": 1})
    project.archive()
    with simulate_storage_error(errno.EIO), pytest.raises(StateError) as caught:
        repo.save(project)
    assert caught.value.code == "E201"
    assert project.read_only is False
    assert project.status.value == "active"
    assert project.get_feature(feature.id) is feature  # the caller's reference stays valid
    assert feature.current_phase == "define"
    assert feature.artifacts == {}
    repo.save(project)  # and the repository keeps working from the last good version
    assert project.revision == 4


def test_conflict_is_not_rolled_back(repo: FileSystemProjectRepository, tmp_path: Path) -> None:
    project = active_project(repo, tmp_path)
    other = FileSystemProjectRepository().get_by_path(tmp_path)
    assert other is not None
    other.archive()
    FileSystemProjectRepository().save(other)
    project.start_feature("mine")
    with pytest.raises(StateError) as caught:
        repo.save(project)
    assert caught.value.code == "E202"
    assert len(project.features) == 1


def test_rollback_of_unknown_project_is_refused(repo: FileSystemProjectRepository, tmp_path: Path) -> None:
    from cde_otel.core import Project

    assert repo.rollback(Project(name="x", path=str(tmp_path))) is False


def damage(tmp_path: Path, how: str) -> None:
    state_file = state_paths(tmp_path)[1]
    raw = state_file.read_bytes()
    if how == "truncated":
        state_file.write_bytes(raw[: len(raw) // 2])
    elif how == "garbage":
        state_file.write_bytes(b"\x00\x01binary")
    elif how == "invalid":
        document = json.loads(raw)
        document["project"]["status"] = "exploded"
        from cde_otel.core import state as codec

        document["checksum"] = codec.checksum(document)
        state_file.write_text(json.dumps(document))
    elif how == "unsupported":
        document = json.loads(raw)
        document["schema_version"] = 99
        state_file.write_text(json.dumps(document))
    elif how == "missing":
        state_file.unlink()


@pytest.mark.parametrize("how", ["truncated", "garbage", "invalid", "unsupported", "missing"])
def test_state_recovery_from_backup(tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture) -> None:
    writer = FileSystemProjectRepository()
    project = active_project(writer, tmp_path)
    feature = project.start_feature("keep me")
    writer.save(project)
    good = project.to_dict()
    bad_bytes = None
    damage(tmp_path, how)
    if how != "missing":
        bad_bytes = state_paths(tmp_path)[1].read_bytes()

    repo = FileSystemProjectRepository()
    with caplog.at_level(logging.WARNING, logger="cde_otel.state"):
        recovered = repo.get_or_create(tmp_path)
    assert recovered.to_dict() == good
    assert recovered.get_feature(feature.id).prompt == "keep me"
    assert len(repo.recoveries) == 1
    warning = repo.recoveries[0]
    assert warning.code == "E208"
    assert warning.context["backup_revision"] == 3
    records = [r for r in caplog.records if getattr(r, "error_code", None) == "E208"]
    assert len(records) == 1
    # the bad file is kept aside, never deleted
    kept = list((tmp_path / ".cde").glob("state.json.corrupt-*"))
    if bad_bytes is None:
        assert kept == []
    else:
        assert [p.read_bytes() for p in kept] == [bad_bytes]
        assert warning.context["corrupt_copy"] == str(kept[0])
    # the recovered state was written back as a new, valid revision
    fresh = FileSystemProjectRepository()
    reloaded = fresh.get_by_path(tmp_path)
    assert reloaded is not None
    assert reloaded.to_dict() == good
    assert reloaded.revision == recovered.revision == 4
    assert fresh.recoveries == []
    recovered.start_feature("work continues")
    repo.save(recovered)


def test_recovery_skips_damaged_backups(tmp_path: Path) -> None:
    repo = FileSystemProjectRepository()
    project = active_project(repo, tmp_path)
    project.name = "newest"
    repo.save(project)
    newest = repo.list_backups(tmp_path)[0]
    newest.path.write_bytes(b"{}")
    damage(tmp_path, "garbage")
    recovered = FileSystemProjectRepository().get_by_path(tmp_path)
    assert recovered is not None
    assert recovered.status.value == "active"
    assert recovered.name != "newest"  # from the newest *valid* backup (revision 2)


def test_no_valid_backup_raises_coded_error(tmp_path: Path) -> None:
    repo = FileSystemProjectRepository()
    active_project(repo, tmp_path)
    for backup in repo.list_backups(tmp_path):
        backup.path.write_bytes(b"nope")
    damage(tmp_path, "truncated")
    with pytest.raises(StateError) as caught:
        FileSystemProjectRepository().get_or_create(tmp_path)
    assert caught.value.code == "E203"
    assert caught.value.context["backups_checked"] == 2
    assert state_paths(tmp_path)[1].exists(), "the damaged file is left in place for inspection"


def test_forced_restore_keeps_damaged_state_aside(tmp_path: Path) -> None:
    repo = FileSystemProjectRepository(recover_from_backups=False)
    active_project(repo, tmp_path)
    damage(tmp_path, "garbage")
    backup = repo.list_backups(tmp_path)[0]
    restored = repo.restore_backup(tmp_path, backup.name)
    assert restored.status.value == "active"
    assert restored.revision == backup.revision + 1
    assert [p.read_bytes() for p in (tmp_path / ".cde").glob("state.json.corrupt-*")] == [b"\x00\x01binary"]


def test_recovered_state_served_read_only_when_it_cannot_be_written_back(tmp_path: Path) -> None:
    repo = FileSystemProjectRepository()
    active_project(repo, tmp_path)
    damage(tmp_path, "truncated")
    fresh = FileSystemProjectRepository()
    with simulate_storage_error(errno.EROFS):
        project = fresh.get_by_path(tmp_path)
    assert project is not None
    assert project.read_only is True
    assert project.status.value == "active"
    assert fresh.recoveries[0].context["persisted"] is False
