"""Durable, cross-process-safe persistence of a project in ``<path>/.cde/state.json``.

The repository coordinates; the parts live beside it: the document format and file
layout (:mod:`~cde_otel.core.state`), crash-safe writes (:mod:`~cde_otel.core.storage`),
backups (``_backups``), the versions rollback returns to (``_last_good``), read-only
bookkeeping (``_read_only``) and recovery (``_recovery``).

* Writes are atomic and durable (:func:`cde_otel.core.storage.atomic_write`).
* A file lock serialises writers; a revision number detects lost updates: saving a
  project loaded at an older revision than the file's raises a recoverable
  ``StateError`` E202, and ``save(project, force=True)`` overwrites deliberately.
* Each successful save also writes a checksummed backup to ``.cde/backups/``,
  keeping the newest ``backup_retention`` of them. The state file is the commit
  point: a backup that cannot be written is logged, not a failed save.

Graceful degradation (PROD-05):

* **Rollback** — a save that fails for any reason but a conflict (E202: the caller
  reloads or forces) puts the in-memory project back to the last version this
  repository loaded or saved; the file is untouched (old-or-new atomic write).
* **Read-only mode** — a save refused by the storage (E210: ENOSPC, EROFS, EACCES,
  EPERM, EDQUOT) marks the project ``read_only`` with a ``read_only_reason`` and
  raises ``ReadOnlyModeError`` E207 chained to the cause. ``get_or_create`` also
  probes the ``.cde`` directory of an existing project, and a brand-new project
  that cannot be persisted comes back read-only, in memory, instead of failing.
  :attr:`FileSystemProjectRepository.read_only_projects` maps each read-only
  project path to its reason, and ``is_read_only(path)`` returns one reason or None
  (what health readiness reports).
* **Automatic exit** — :meth:`~FileSystemProjectRepository.probe` writes a tiny
  fsynced temp file in ``.cde/``; success ends read-only mode. ``save`` and
  :meth:`~FileSystemProjectRepository.ensure_writable` probe by themselves, at
  most once per ``readonly_probe_s`` seconds per project (injectable ``clock``).
* **Recovery** — a damaged or vanished ``state.json`` is restored on load from the
  newest valid backup (the bad file kept aside), with an E208 warning appended to
  :attr:`~FileSystemProjectRepository.recoveries`; without a valid backup the coded
  load error is raised (details: ``cde_otel.core._recovery``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from cde_otel import breadcrumbs
from cde_otel._exceptions import CDEError, ProjectError, ReadOnlyModeError, StateError, ValidationError
from cde_otel.core import state, storage
from cde_otel.core._backups import BackupInfo, BackupStore
from cde_otel.core._last_good import LastGoodVersions
from cde_otel.core._read_only import ReadOnlyTracker, read_only_error, reason_of
from cde_otel.core._recovery import CORRUPT_LABEL, RECOVERABLE_LOAD_CODES, StateRecovery
from cde_otel.core._validation import MAX_REVISION, validate_name
from cde_otel.core.model import Project
from cde_otel.core.state import state_paths

__all__ = ["BackupInfo", "FileSystemProjectRepository", "PersistenceGuard"]

_log = logging.getLogger("cde_otel.state")
T = TypeVar("T")


class PersistenceGuard(Protocol):
    """Runs one persistence attempt; resilience layers retry it or short-circuit it."""

    def __call__(self, operation: Callable[[], T], /) -> T: ...


def _unguarded(operation: Callable[[], T], /) -> T:
    return operation()


class FileSystemProjectRepository:
    """Loads and saves projects as ``.cde/state.json`` inside the project directory."""

    def __init__(
        self,
        *,
        lock_timeout: float = 10.0,
        backup_retention: int = 10,
        persistence_guard: PersistenceGuard | None = None,
        readonly_probe_s: float = 5.0,
        recover_from_backups: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if backup_retention < 1:
            raise ValidationError("backup_retention must be at least 1", "E305", {"field": "backup_retention"})
        self.lock_timeout = lock_timeout
        self.persistence_guard: PersistenceGuard = persistence_guard or _unguarded
        self.recover_from_backups = recover_from_backups
        self._backups = BackupStore(backup_retention)
        self._last_good = LastGoodVersions()
        self._read_only = ReadOnlyTracker(clock, readonly_probe_s)
        self._recovery = StateRecovery(
            self._backups,
            remember=self._last_good.remember,
            enter_read_only=self._mark_read_only,
            refuse=lambda root, reason: self._read_only.refuse(str(root), reason),
        )
        #: E208 warnings, oldest first, one per automatic recovery from a backup (bounded).
        self.recoveries: list[StateError] = self._recovery.recoveries

    @property
    def backup_retention(self) -> int:
        return self._backups.retention

    @property
    def readonly_probe_s(self) -> float:
        return self._read_only.probe_interval_s

    @property
    def clock(self) -> Callable[[], float]:
        return self._read_only.clock

    # -- degradation status -----------------------------------------------------
    @property
    def read_only_projects(self) -> dict[str, str]:
        """``{project path: reason}`` of every project this repository holds in read-only mode."""
        return self._read_only.reasons()

    def is_read_only(self, path: str | os.PathLike[str]) -> str | None:
        """The read-only reason of the project at ``path``, or None while it is writable (for health)."""
        return self._read_only.reason(str(Path(path).expanduser().resolve()))

    def probe(self, project: Project) -> bool:
        """Tries a durable write in the project's ``.cde/``; True when it worked.

        Success ends read-only mode; a refusal by the storage (E210 errnos) starts it.
        """
        state_dir, _, _ = state_paths(project.path)
        self._read_only.probing(project)
        size = self._last_good.size_of(project)
        try:
            state_dir.mkdir(exist_ok=True)  # a new project that never saved has no .cde yet
            storage.probe_write(state_dir, size=4096 if size is None else size)
        except OSError as exc:
            if storage.is_storage_unavailable(exc):
                error = storage.state_error(exc, path=state_dir, operation="probe write")
                self._mark_read_only(project, reason_of(error))
            return False
        self._read_only.leave(project)
        return True

    def ensure_writable(self, project: Project) -> bool:
        """Probes a read-only project if a probe is due; True when mutations are allowed.

        Call before mutating to leave read-only mode as soon as the storage is back.
        """
        if project.read_only and self._read_only.probe_due(project):
            self.probe(project)
        return not project.read_only

    def rollback(self, project: Project) -> bool:
        """Puts ``project`` back, in place, to the last version this repository loaded or saved.

        False when the repository never loaded or saved this object (nothing to go back to).
        """
        return self._last_good.rollback(project)

    # -- queries ------------------------------------------------------------
    def get_by_path(self, path: str | os.PathLike[str]) -> Project | None:
        """The project stored at ``path``, or None when it has no state yet.

        A damaged state is recovered from the newest valid backup (see the module docs).
        """
        root = state.project_root(path)
        breadcrumbs.record("FileSystemProjectRepository.get_by_path", path=str(root))
        project = self._load(root)
        if project is not None:
            reason = self._read_only.reason(str(root))
            if reason is not None:
                project.mark_read_only(reason, self.ensure_writable)
        return project

    def get_or_create(self, path: str | os.PathLike[str], name: str | None = None) -> Project:
        """Loads the project at ``path`` or creates (and saves) a new ONBOARDING one there.

        An existing project whose ``.cde`` refuses writes comes back read-only; a new one
        that cannot be persisted comes back read-only in memory (saved once storage is back).
        """
        root = state.project_root(path)
        existing = self.get_by_path(root)
        if existing is not None:
            if existing.read_only:
                self.ensure_writable(existing)
            elif self._read_only.probe_due(existing):
                self.probe(existing)
            return existing
        title = validate_name(name) if name is not None else root.name or str(root)
        project = Project(name=title, path=str(root))
        try:
            self.save(project)
        except ReadOnlyModeError:
            return project  # storage refused the first write: serve it read-only, in memory
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
        _, _, backup_dir = state_paths(state.project_root(path))
        return self._backups.scan(backup_dir)

    def recovery_backup(self, path: str | os.PathLike[str]) -> BackupInfo | None:
        """The backup automatic recovery would restore the project at ``path`` from, or None; reads only."""
        root = state.project_root(path)
        _, state_file, backup_dir = state_paths(root)
        try:
            owner = state.project_id_in(state.read_regular(state_file))
        except (OSError, StateError):
            owner = None
        owner = owner or self._last_good.known_id(str(root))
        found, _ = self._backups.newest_valid_of(self._backups.scan(backup_dir), owner, root)
        return found[0] if found else None

    def load_backup(self, path: str | os.PathLike[str], backup: str) -> Project:
        """Reads and validates one backup without touching the state file."""
        _, _, backup_dir = state_paths(state.project_root(path))
        return self._backups.load(backup_dir, backup)

    def restore_backup(self, path: str | os.PathLike[str], backup: str) -> Project:
        """Makes ``backup`` the current state (as a new revision) and returns the restored project.

        A damaged current state file is kept aside as ``state.json.corrupt-<stamp>``.
        """
        root = state.project_root(path)
        breadcrumbs.record("FileSystemProjectRepository.restore_backup", path=str(root), backup=backup)
        restored = self.load_backup(root, backup)
        owners = self._project_ids(root, besides=str(backup))
        if owners and restored.id not in owners:
            raise StateError(
                f"backup {backup} belongs to project {restored.id} ({restored.name!r}), not to the project at "
                f"{root} ({', '.join(sorted(owners))}); nothing was restored",
                "E211",
                {"path": str(root), "backup": str(backup), "backup_project_id": restored.id,
                 "backup_project_name": restored.name, "project_id": ", ".join(sorted(owners))},
            )  # fmt: skip
        if not owners:
            _log.warning("restoring %s into %s without another state or backup to confirm it is this project's",
                         backup, root, extra={"cde_state_path": str(root), "backup": str(backup)})  # fmt: skip
        self.save(restored, force=True)
        return restored

    def _project_ids(self, root: Path, *, besides: str) -> set[str]:
        """The project id(s) at ``root``: the one the state file names (even damaged), else the other valid backups'."""
        _, state_file, backup_dir = state_paths(root)
        try:
            named = state.project_id_in(state.read_regular(state_file))
        except (OSError, StateError):
            named = None
        if named is not None:
            return {named}
        found: set[str] = set()
        for info in self._backups.scan(backup_dir):
            if info.name == besides:
                continue
            try:
                project, _ = state.decode(state.read_regular(info.path), source=str(info.path))
            except (OSError, StateError):
                continue
            found.add(project.id)
        return found

    # -- commands -----------------------------------------------------------
    def save(self, project: Project, force: bool = False) -> None:
        """Atomically writes ``project`` as the next revision.

        Raises ``StateError`` E202 (recoverable) when the file moved on since the
        project was loaded, unless ``force`` is true; ``ReadOnlyModeError`` E207 when
        the project is (or just became) read-only. Any failure but E202 rolls the
        in-memory project back to its last good version.
        """
        breadcrumbs.record("FileSystemProjectRepository.save", project_id=project.id, revision=project.revision)
        self.ensure_writable(project)
        project._check_writable("save")
        root = Path(project.path)
        if not root.is_dir():
            raise ProjectError(
                f"project directory {root} does not exist", "E001", {"path": str(root), "project_id": project.id}
            )
        try:
            revision, data = self.persistence_guard(lambda: self._write_locked(project, force))
        except StateError as exc:
            if exc.code == "E202":
                raise  # the caller resolves a conflict: reload and reapply, or force
            self.rollback(project)
            if exc.code == "E210":
                raise self._enter_read_only(project, exc) from exc
            raise
        except BaseException:
            self.rollback(project)
            raise
        project.revision = revision
        self._last_good.remember(project, data)
        self._read_only.saved(project)

    def _write_locked(self, project: Project, force: bool) -> tuple[int, bytes]:
        state_dir, state_file, backup_dir = state_paths(project.path)
        try:
            state_dir.mkdir(exist_ok=True)
            with state.state_lock(state_dir, self.lock_timeout):
                try:
                    on_disk = state.revision_on_disk(state_file)
                except StateError:
                    if not force and not self._recovery.pending_for(state_file, project):
                        raise
                    # A forced save, or a recovery the storage refused earlier, replaces a damaged file;
                    # a copy of it is kept for inspection, and it stays in place until the write succeeds.
                    storage.keep_aside(state_file, CORRUPT_LABEL)
                    on_disk = max(project.revision, self._backups.newest_revision(backup_dir))
                if not force and on_disk != project.revision:
                    raise StateError(
                        f"state of project {project.name!r} changed on disk (revision {on_disk}) since it was "
                        f"loaded (revision {project.revision}); reload it, or save with force=True to overwrite",
                        "E202",
                        {"path": str(state_file), "expected_revision": project.revision,
                         "found_revision": on_disk, "project_id": project.id},
                        snapshot=project.snapshot(),
                    )  # fmt: skip
                # Above every backup too: after state.json was replaced by an older copy (a checkout, a hand
                # restore), a lower number would sort below stale backups and be rotated out at once.
                revision = max(on_disk, project.revision, self._backups.newest_revision(backup_dir)) + 1
                if revision > MAX_REVISION:
                    raise StateError(
                        f"state of project {project.name!r} is at revision {revision - 1}, the highest possible",
                        "E213",
                        {"path": str(state_file), "revision": revision - 1, "max_revision": MAX_REVISION,
                         "project_id": project.id},
                    )  # fmt: skip
                data = state.encode(project, revision)
                storage.remove_stale_temp_files(state_dir)
                storage.atomic_write(state_file, data)
                self._recovery.settled(state_file)
                self._backups.write_after_commit(backup_dir, revision, data)
                return revision, data
        except CDEError:
            raise
        except OSError as exc:
            raise storage.state_error(exc, path=state_file, operation="save") from exc

    # -- loading and recovery -------------------------------------------------
    def _load(self, root: Path) -> Project | None:
        _, state_file, backup_dir = state_paths(root)
        try:
            raw = state.read_regular(state_file)
        except FileNotFoundError:
            if self.recover_from_backups and self._backups.newest_revision(backup_dir) > 0:
                missing = StateError(
                    f"state file {state_file} is missing but backups exist",
                    "E203",
                    {"path": str(state_file), "reason": "state file missing"},
                )
                return self._recover(root, missing)
            return None
        except OSError as exc:
            raise storage.state_error(exc, path=state_file, operation="read") from exc
        try:
            project, revision = state.decode(raw, source=str(state_file))
        except StateError as exc:
            if not self.recover_from_backups or exc.code not in RECOVERABLE_LOAD_CODES:
                raise
            return self._recover(root, exc)
        state.relocated(project, root)
        project.revision = revision
        self._last_good.remember(project, raw)
        return project

    def _recover(self, root: Path, cause: StateError) -> Project:
        state_dir, state_file, backup_dir = state_paths(root)
        try:
            with state.state_lock(state_dir, self.lock_timeout):
                known_id = self._last_good.known_id(str(root))
                return self._recovery.recover_locked(state_file, backup_dir, cause, known_id)
        except OSError as exc:
            raise storage.state_error(exc, path=state_file, operation="recover") from exc

    # -- read-only bookkeeping -----------------------------------------------------
    def _mark_read_only(self, project: Project, reason: str) -> None:
        # A direct mutation of the project may end read-only mode too, through the same rate-limited probe.
        self._read_only.enter(project, reason, self.ensure_writable)

    def _enter_read_only(self, project: Project, cause: StateError) -> ReadOnlyModeError:
        reason = reason_of(cause)
        self._mark_read_only(project, reason)
        return read_only_error(project, cause, reason)
