"""Durable, cross-process-safe persistence of a project in ``<path>/.cde/state.json``.

* Writes are atomic and durable (:func:`cde_otel.core.storage.atomic_write`).
* A file lock serialises writers; a revision number detects lost updates: saving a
  project loaded at an older revision than the file's raises a recoverable
  ``StateError`` E202, and ``save(project, force=True)`` overwrites deliberately.
* Each successful save also writes a checksummed backup to ``.cde/backups/``,
  keeping the newest ``backup_retention`` of them.
* Loads validate the document; a bad one raises a coded ``StateError``.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import filelock

from cde_otel.core import breadcrumbs, state, storage
from cde_otel.core.errors import CDEError, ProjectError, StateError, ValidationError
from cde_otel.core.model import MAX_NAME_LENGTH, Project, _validated_text

T = TypeVar("T")

STATE_DIR = ".cde"
STATE_FILE = "state.json"
BACKUP_DIR = "backups"
LOCK_FILE = "state.lock"
_BACKUP_NAME = re.compile(r"^state-r(?P<revision>\d{8})-(?P<stamp>\d{8}T\d{6}\d{6}Z)\.json$")


class PersistenceGuard(Protocol):
    """Runs one persistence attempt; resilience layers retry it or short-circuit it."""

    def __call__(self, operation: Callable[[], T], /) -> T: ...


def _unguarded(operation: Callable[[], T], /) -> T:
    return operation()


@dataclass(frozen=True, slots=True)
class BackupInfo:
    name: str
    path: Path
    revision: int
    created_at: datetime
    size_bytes: int


def state_paths(project_path: str | os.PathLike[str]) -> tuple[Path, Path, Path]:
    """(state dir, state file, backups dir) of a project directory."""
    root = Path(project_path) / STATE_DIR
    return root, root / STATE_FILE, root / BACKUP_DIR


def _storage_error(exc: OSError, *, path: Path, operation: str) -> StateError:
    context: dict[str, Any] = {
        "path": str(path),
        "operation": operation,
        "errno": errno.errorcode.get(exc.errno or 0, str(exc.errno)),
        "reason": exc.strerror or str(exc),
    }
    if exc.errno in storage.STORAGE_UNAVAILABLE_ERRNOS:
        return StateError(f"storage refused {operation} of {path}: {exc.strerror}", "E210", context)
    return StateError(f"{operation} of {path} failed: {exc.strerror or exc}", "E201", context)


class FileSystemProjectRepository:
    """Loads and saves projects as ``.cde/state.json`` inside the project directory."""

    def __init__(
        self,
        *,
        lock_timeout: float = 10.0,
        backup_retention: int = 10,
        persistence_guard: PersistenceGuard | None = None,
    ) -> None:
        if backup_retention < 1:
            raise ValidationError("backup_retention must be at least 1", "E305", {"field": "backup_retention"})
        self.lock_timeout = lock_timeout
        self.backup_retention = backup_retention
        self.persistence_guard: PersistenceGuard = persistence_guard or _unguarded

    # -- queries ------------------------------------------------------------
    def get_by_path(self, path: str | os.PathLike[str]) -> Project | None:
        """The project stored at ``path``, or None when it has no state yet."""
        root = self._project_dir(path)
        breadcrumbs.record("FileSystemProjectRepository.get_by_path", path=str(root))
        _, state_file, _ = state_paths(root)
        try:
            raw = state_file.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _storage_error(exc, path=state_file, operation="read") from exc
        project, revision = state.decode(raw, source=str(state_file))
        project.revision = revision
        return project

    def get_or_create(self, path: str | os.PathLike[str], name: str | None = None) -> Project:
        """Loads the project at ``path`` or creates (and saves) a new ONBOARDING one there."""
        root = self._project_dir(path)
        existing = self.get_by_path(root)
        if existing is not None:
            return existing
        title = (
            _validated_text(name, code="E302", what="name", max_length=MAX_NAME_LENGTH)
            if name is not None
            else root.name or str(root)
        )
        project = Project(name=title, path=str(root))
        try:
            self.save(project)
        except StateError as exc:
            if exc.code != "E202":
                raise
            # Another process created it between our read and our write: theirs wins.
            loaded = self.get_by_path(root)
            if loaded is None:
                raise
            return loaded
        return project

    def list_backups(self, path: str | os.PathLike[str]) -> list[BackupInfo]:
        """Backups of the project at ``path``, newest first."""
        _, _, backup_dir = state_paths(self._project_dir(path))
        found: list[BackupInfo] = []
        try:
            entries = list(backup_dir.iterdir())
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise _storage_error(exc, path=backup_dir, operation="list backups") from exc
        for entry in entries:
            match = _BACKUP_NAME.match(entry.name)
            if match is None:
                continue
            created = datetime.strptime(match["stamp"], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
            try:
                size = entry.stat().st_size
            except OSError:
                continue
            found.append(BackupInfo(entry.name, entry, int(match["revision"]), created, size))
        found.sort(key=lambda b: (b.revision, b.created_at), reverse=True)
        return found

    def load_backup(self, path: str | os.PathLike[str], backup: str) -> Project:
        """Reads and validates one backup without touching the state file."""
        _, _, backup_dir = state_paths(self._project_dir(path))
        candidate = backup_dir / Path(backup).name
        if _BACKUP_NAME.match(candidate.name) is None or not candidate.is_file():
            raise StateError(
                f"no backup named {backup!r} in {backup_dir}", "E209", {"path": str(backup_dir), "backup": backup}
            )
        try:
            project, revision = state.decode(candidate.read_bytes(), source=str(candidate))
        except StateError as exc:
            raise StateError(
                f"backup {candidate.name} is damaged: {exc.message}",
                "E209",
                {"path": str(backup_dir), "backup": candidate.name, "reason": exc.message},
            ) from exc
        except OSError as exc:
            raise _storage_error(exc, path=candidate, operation="read backup") from exc
        project.revision = revision
        return project

    def restore_backup(self, path: str | os.PathLike[str], backup: str) -> Project:
        """Makes ``backup`` the current state (as a new revision) and returns the restored project."""
        root = self._project_dir(path)
        breadcrumbs.record("FileSystemProjectRepository.restore_backup", path=str(root), backup=backup)
        restored = self.load_backup(root, backup)
        self.save(restored, force=True)
        return restored

    # -- commands -----------------------------------------------------------
    def save(self, project: Project, force: bool = False) -> None:
        """Atomically writes ``project`` as the next revision.

        Raises ``StateError`` E202 (recoverable) when the file moved on since the
        project was loaded, unless ``force`` is true.
        """
        breadcrumbs.record("FileSystemProjectRepository.save", project_id=project.id, revision=project.revision)
        project._check_writable("save")
        root = Path(project.path)
        state_dir, state_file, backup_dir = state_paths(root)
        if not root.is_dir():
            raise ProjectError(
                f"project directory {root} does not exist", "E001", {"path": str(root), "project_id": project.id}
            )
        new_revision = self.persistence_guard(
            lambda: self._write_locked(project, force, state_dir, state_file, backup_dir)
        )
        project.revision = new_revision

    def _write_locked(self, project: Project, force: bool, state_dir: Path, state_file: Path, backup_dir: Path) -> int:
        try:
            state_dir.mkdir(exist_ok=True)
            lock = filelock.FileLock(str(state_dir / LOCK_FILE), timeout=self.lock_timeout)
            with lock:
                try:
                    on_disk = self._disk_revision(state_file)
                except StateError:
                    if not force:
                        raise
                    on_disk = project.revision  # a forced save replaces a damaged file
                if not force and on_disk != project.revision:
                    raise StateError(
                        f"state of project {project.name!r} changed on disk (revision {on_disk}) since it was "
                        f"loaded (revision {project.revision}); reload it, or save with force=True to overwrite",
                        "E202",
                        {"path": str(state_file), "expected_revision": project.revision,
                         "found_revision": on_disk, "project_id": project.id},
                        snapshot=project.snapshot(),
                    )  # fmt: skip
                revision = max(on_disk, project.revision) + 1
                data = state.encode(project, revision)
                storage.remove_stale_temp_files(state_dir)
                storage.atomic_write(state_file, data)
                self._write_backup(backup_dir, revision, data)
                return revision
        except filelock.Timeout as exc:
            raise StateError(
                f"timed out after {self.lock_timeout}s waiting for the state lock of {state_dir}",
                "E206",
                {"path": str(state_dir / LOCK_FILE), "timeout_s": self.lock_timeout},
            ) from exc
        except CDEError:
            raise
        except OSError as exc:
            raise _storage_error(exc, path=state_file, operation="save") from exc

    def _disk_revision(self, state_file: Path) -> int:
        try:
            raw = state_file.read_bytes()
        except FileNotFoundError:
            return 0
        _, revision = state.decode(raw, source=str(state_file))
        return revision

    def _write_backup(self, backup_dir: Path, revision: int, data: bytes) -> None:
        backup_dir.mkdir(exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        storage.atomic_write(backup_dir / f"state-r{revision:08d}-{stamp}.json", data)
        for stale in self.list_backups(backup_dir.parent.parent)[self.backup_retention :]:
            stale.path.unlink(missing_ok=True)

    # -- helpers ------------------------------------------------------------
    @staticmethod
    def _project_dir(path: str | os.PathLike[str]) -> Path:
        if not isinstance(path, str | os.PathLike) or not str(path).strip():
            raise ProjectError("project path must be a non-empty path", "E001", {"path": str(path)})
        given = str(path)
        root = Path(given).expanduser()
        try:
            if not root.is_dir():
                raise ProjectError(
                    f"project path {given} does not exist or is not a directory", "E001", {"path": given}
                )
            root = root.resolve()
        except OSError as exc:
            raise ProjectError(
                f"project path {given} is not accessible: {exc.strerror}", "E002", {"path": given}
            ) from exc
        if not os.access(root, os.R_OK | os.X_OK):
            raise ProjectError(f"project path {given} is not readable", "E002", {"path": given})
        return root
