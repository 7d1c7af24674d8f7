"""Durable, cross-process-safe persistence of a project in ``<path>/.cde/state.json``.

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
* **Recovery** — a corrupt, truncated, invalid or unsupported ``state.json`` (or one
  that vanished while backups remain) is restored on load from the newest valid
  backup: the bad file is kept as ``state.json.corrupt-<UTC stamp>``, the recovered
  state is written back as a new revision, and a ``StateError`` E208 is appended to
  :attr:`~FileSystemProjectRepository.recoveries` and logged as a warning on the
  stdlib logger ``cde_otel.state`` with ``extra={"error_code": "E208", ...}``.
  Without a valid backup the coded load error is raised; a damaged state is never
  silently replaced by a new empty project.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import filelock

from cde_otel import breadcrumbs
from cde_otel._exceptions import CDEError, ProjectError, ReadOnlyModeError, StateError, ValidationError
from cde_otel.core import state, storage
from cde_otel.core.model import MAX_NAME_LENGTH, Feature, Project, _validated_text

T = TypeVar("T")

STATE_DIR = ".cde"
STATE_FILE = "state.json"
BACKUP_DIR = "backups"
LOCK_FILE = "state.lock"
CORRUPT_LABEL = "corrupt"
#: Load errors that automatic recovery from a backup repairs.
RECOVERABLE_LOAD_CODES = frozenset({"E203", "E204", "E205"})
MAX_RECOVERIES_KEPT = 100
_BACKUP_NAME = re.compile(r"^state-r(?P<revision>\d{8})-(?P<stamp>\d{8}T\d{6}\d{6}Z)\.json$")
_log = logging.getLogger("cde_otel.state")


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


def _decode(raw: bytes, source: str) -> tuple[Project, int]:
    """``state.decode`` with a guarantee: any defect is a coded ``StateError``, never another exception."""
    try:
        return state.decode(raw, source=source)
    except CDEError:
        raise
    except Exception as exc:
        raise StateError(
            f"state file {source} does not match the schema: {exc!r}", "E204", {"path": source, "reason": repr(exc)}
        ) from exc


def _restore_in_place(project: Project, good: Project) -> None:
    """Copies ``good`` into ``project`` so references callers hold (project, features) stay valid."""
    for field in dataclasses.fields(Project):
        if field.name not in ("features", "read_only", "read_only_reason", "revision"):
            setattr(project, field.name, getattr(good, field.name))
    features: dict[str, Feature] = {}
    for feature_id, good_feature in good.features.items():
        current = project.features.get(feature_id)
        if current is None:
            good_feature._project = project
            features[feature_id] = good_feature
            continue
        for field in dataclasses.fields(Feature):
            if field.name != "_project":
                setattr(current, field.name, getattr(good_feature, field.name))
        features[feature_id] = current
    project.features.clear()
    project.features.update(features)


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
        self.backup_retention = backup_retention
        self.persistence_guard: PersistenceGuard = persistence_guard or _unguarded
        self.readonly_probe_s = readonly_probe_s
        self.recover_from_backups = recover_from_backups
        self.clock = clock
        #: E208 warnings, oldest first, one per automatic recovery from a backup (bounded).
        self.recoveries: list[StateError] = []
        self._guard = threading.Lock()
        self._read_only: dict[str, str] = {}
        self._last_probe: dict[str, float] = {}
        self._last_good: dict[int, tuple[weakref.ref[Project], bytes]] = {}

    # -- degradation status -----------------------------------------------------
    @property
    def read_only_projects(self) -> dict[str, str]:
        """``{project path: reason}`` of every project this repository holds in read-only mode."""
        with self._guard:
            return dict(self._read_only)

    def is_read_only(self, path: str | os.PathLike[str]) -> str | None:
        """The read-only reason of the project at ``path``, or None while it is writable (for health)."""
        key = str(Path(path).expanduser().resolve())
        with self._guard:
            return self._read_only.get(key)

    def probe(self, project: Project) -> bool:
        """Tries a durable write in the project's ``.cde/``; True when it worked.

        Success ends read-only mode; a refusal by the storage (E210 errnos) starts it.
        """
        root = Path(project.path)
        state_dir, _, _ = state_paths(root)
        key = str(root)
        with self._guard:
            self._last_probe[key] = self.clock()
            good = self._last_good.get(id(project))
        try:
            state_dir.mkdir(exist_ok=True)  # a new project that never saved has no .cde yet
            storage.probe_write(state_dir, size=len(good[1]) if good else 4096)
        except OSError as exc:
            if storage.is_storage_unavailable(exc):
                error = _storage_error(exc, path=state_dir, operation="probe write")
                self._mark_read_only(project, self._reason(error))
            return False
        self._clear_read_only(project)
        return True

    def ensure_writable(self, project: Project) -> bool:
        """Probes a read-only project if a probe is due; True when mutations are allowed.

        Call before mutating to leave read-only mode as soon as the storage is back.
        """
        if project.read_only and self._probe_due(project):
            self.probe(project)
        return not project.read_only

    def rollback(self, project: Project) -> bool:
        """Puts ``project`` back, in place, to the last version this repository loaded or saved.

        False when the repository never loaded or saved this object (nothing to go back to).
        """
        with self._guard:
            entry = self._last_good.get(id(project))
        if entry is None or entry[0]() is not project:
            return False
        good, revision = _decode(entry[1], "last good version")
        _restore_in_place(project, good)
        project.revision = revision
        return True

    # -- queries ------------------------------------------------------------
    def get_by_path(self, path: str | os.PathLike[str]) -> Project | None:
        """The project stored at ``path``, or None when it has no state yet.

        A damaged state is recovered from the newest valid backup (see the module docs).
        """
        root = self._project_dir(path)
        breadcrumbs.record("FileSystemProjectRepository.get_by_path", path=str(root))
        project = self._load(root)
        if project is not None:
            with self._guard:
                reason = self._read_only.get(str(root))
            if reason is not None:
                project.read_only, project.read_only_reason = True, reason
                project._writable_probe = self.ensure_writable
        return project

    def get_or_create(self, path: str | os.PathLike[str], name: str | None = None) -> Project:
        """Loads the project at ``path`` or creates (and saves) a new ONBOARDING one there.

        An existing project whose ``.cde`` refuses writes comes back read-only; a new one
        that cannot be persisted comes back read-only in memory (saved once storage is back).
        """
        root = self._project_dir(path)
        existing = self.get_by_path(root)
        if existing is not None:
            if existing.read_only:
                self.ensure_writable(existing)
            elif self._probe_due(existing):
                self.probe(existing)
            return existing
        title = (
            _validated_text(name, code="E302", what="name", max_length=MAX_NAME_LENGTH)
            if name is not None
            else root.name or str(root)
        )
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
        _, _, backup_dir = state_paths(self._project_dir(path))
        return self._scan_backups(backup_dir)

    def _scan_backups(self, backup_dir: Path) -> list[BackupInfo]:
        # Internal callers use this directly, so saves are not traced as list_backups calls.
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
            project, revision = _decode(candidate.read_bytes(), str(candidate))
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
        """Makes ``backup`` the current state (as a new revision) and returns the restored project.

        A damaged current state file is kept aside as ``state.json.corrupt-<stamp>``.
        """
        root = self._project_dir(path)
        breadcrumbs.record("FileSystemProjectRepository.restore_backup", path=str(root), backup=backup)
        restored = self.load_backup(root, backup)
        self.save(restored, force=True)
        return restored

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
        state_dir, state_file, backup_dir = state_paths(root)
        if not root.is_dir():
            raise ProjectError(
                f"project directory {root} does not exist", "E001", {"path": str(root), "project_id": project.id}
            )
        try:
            revision, data = self.persistence_guard(
                lambda: self._write_locked(project, force, state_dir, state_file, backup_dir)
            )
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
        self._remember(project, data)

    @contextlib.contextmanager
    def _state_lock(self, state_dir: Path) -> Iterator[None]:
        """The cross-process state lock; waiting longer than ``lock_timeout`` is E206."""
        lock = filelock.FileLock(str(state_dir / LOCK_FILE), timeout=self.lock_timeout)
        try:
            lock.acquire()
        except filelock.Timeout as exc:
            raise StateError(
                f"timed out after {self.lock_timeout}s waiting for the state lock of {state_dir}",
                "E206",
                {"path": str(state_dir / LOCK_FILE), "timeout_s": self.lock_timeout},
            ) from exc
        try:
            yield
        finally:
            lock.release()

    def _write_locked(
        self, project: Project, force: bool, state_dir: Path, state_file: Path, backup_dir: Path
    ) -> tuple[int, bytes]:
        try:
            state_dir.mkdir(exist_ok=True)
            with self._state_lock(state_dir):
                try:
                    on_disk = self._disk_revision(state_file)
                except StateError:
                    if not force:
                        raise
                    # A forced save replaces a damaged file; keep the damaged one for inspection.
                    storage.move_aside(state_file, CORRUPT_LABEL)
                    on_disk = max(project.revision, self._newest_backup_revision(backup_dir))
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
                self._write_backup_after_commit(backup_dir, revision, data)
                return revision, data
        except CDEError:
            raise
        except OSError as exc:
            raise _storage_error(exc, path=state_file, operation="save") from exc

    def _disk_revision(self, state_file: Path) -> int:
        try:
            raw = state_file.read_bytes()
        except FileNotFoundError:
            return 0
        _, revision = _decode(raw, str(state_file))
        return revision

    def _write_backup_after_commit(self, backup_dir: Path, revision: int, data: bytes) -> None:
        # The state file is already committed: a failing backup must not turn the save into a failure.
        try:
            self._write_backup(backup_dir, revision, data)
        except OSError as exc:
            error = _storage_error(exc, path=backup_dir, operation="backup")
            _log.warning(
                "state saved but its backup was not written: %s",
                error,
                extra={"error_code": error.code, "cde_state_path": str(backup_dir), "revision": revision},
            )

    def _write_backup(self, backup_dir: Path, revision: int, data: bytes) -> None:
        backup_dir.mkdir(exist_ok=True)
        storage.remove_stale_temp_files(backup_dir)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        storage.atomic_write(backup_dir / f"state-r{revision:08d}-{stamp}.json", data)
        for stale in self._scan_backups(backup_dir)[self.backup_retention :]:
            stale.path.unlink(missing_ok=True)

    def _newest_backup_revision(self, backup_dir: Path) -> int:
        backups = self._scan_backups(backup_dir)
        return backups[0].revision if backups else 0

    # -- loading and recovery -------------------------------------------------
    def _load(self, root: Path) -> Project | None:
        _, state_file, backup_dir = state_paths(root)
        try:
            raw = state_file.read_bytes()
        except FileNotFoundError:
            if self.recover_from_backups and self._newest_backup_revision(backup_dir) > 0:
                missing = StateError(
                    f"state file {state_file} is missing but backups exist",
                    "E203",
                    {"path": str(state_file), "reason": "state file missing"},
                )
                return self._recover(root, missing)
            return None
        except OSError as exc:
            raise _storage_error(exc, path=state_file, operation="read") from exc
        try:
            project, revision = _decode(raw, str(state_file))
        except StateError as exc:
            if not self.recover_from_backups or exc.code not in RECOVERABLE_LOAD_CODES:
                raise
            return self._recover(root, exc)
        project.revision = revision
        self._remember(project, raw)
        return project

    def _recover(self, root: Path, cause: StateError) -> Project:
        state_dir, state_file, backup_dir = state_paths(root)
        try:
            with self._state_lock(state_dir):
                return self._recover_locked(state_file, backup_dir, cause)
        except OSError as exc:
            raise _storage_error(exc, path=state_file, operation="recover") from exc

    def _recover_locked(self, state_file: Path, backup_dir: Path, cause: StateError) -> Project:
        try:  # another process may have repaired it while we waited for the lock
            raw = state_file.read_bytes()
            repaired, repaired_revision = _decode(raw, str(state_file))
        except (FileNotFoundError, StateError):
            pass
        else:
            repaired.revision = repaired_revision
            self._remember(repaired, raw)
            return repaired
        backups = self._scan_backups(backup_dir)
        found = self._newest_valid_backup(backups)
        if found is None:
            raise StateError(
                f"{cause.message}; no valid backup to recover from ({len(backups)} checked)",
                cause.code,
                {**cause.context, "backups_checked": len(backups)},
            ) from cause
        chosen, project = found
        revision = max(b.revision for b in backups) + 1
        data = state.encode(project, revision)
        kept: Path | None = None
        try:
            if state_file.exists():
                kept = storage.move_aside(state_file, CORRUPT_LABEL)
            storage.atomic_write(state_file, data)
        except OSError as exc:
            if not storage.is_storage_unavailable(exc):
                raise
            # Readable but not writable: serve the recovered state read-only until storage is back.
            project.revision = chosen.revision
            self._mark_read_only(project, self._reason(_storage_error(exc, path=state_file, operation="recover")))
            self._record_recovery(state_file, chosen, cause, kept, persisted=False)
            return project
        self._write_backup_after_commit(backup_dir, revision, data)
        project.revision = revision
        self._remember(project, data)
        self._record_recovery(state_file, chosen, cause, kept, persisted=True)
        return project

    @staticmethod
    def _newest_valid_backup(backups: list[BackupInfo]) -> tuple[BackupInfo, Project] | None:
        for backup in backups:
            try:
                project, _ = _decode(backup.path.read_bytes(), str(backup.path))
            except (StateError, OSError):
                continue
            return backup, project
        return None

    def _record_recovery(
        self, state_file: Path, backup: BackupInfo, cause: StateError, kept: Path | None, *, persisted: bool
    ) -> None:
        warning = StateError(
            f"state file {state_file} was bad ({cause.code}: {cause.message}); recovered revision "
            f"{backup.revision} from backup {backup.name}"
            + (f", bad file kept as {kept.name}" if kept else ""),
            "E208",
            {"path": str(state_file), "backup": backup.name, "backup_revision": backup.revision,
             "corrupt_copy": str(kept) if kept else None, "cause_code": cause.code, "persisted": persisted},
        )  # fmt: skip
        warning.__cause__ = cause
        with self._guard:
            self.recoveries.append(warning)
            del self.recoveries[:-MAX_RECOVERIES_KEPT]
        _log.warning(
            str(warning),
            extra={"error_code": "E208", "cde_state_path": str(state_file), "backup": backup.name,
                   "cause_code": cause.code, "corrupt_copy": str(kept) if kept else None},
        )  # fmt: skip

    # -- read-only bookkeeping ----------------------------------------------------
    def _remember(self, project: Project, data: bytes) -> None:
        key = id(project)

        def forget(_ref: weakref.ref[Project], key: int = key, registry: dict[Any, Any] = self._last_good) -> None:
            registry.pop(key, None)

        with self._guard:
            self._last_good[key] = (weakref.ref(project, forget), data)

    def _probe_due(self, project: Project) -> bool:
        with self._guard:
            last = self._last_probe.get(str(Path(project.path)))
        return last is None or self.clock() - last >= self.readonly_probe_s

    @staticmethod
    def _reason(error: StateError) -> str:
        return f"{error.context.get('errno')} ({error.context.get('reason')}) on {error.context.get('path')}"

    def _mark_read_only(self, project: Project, reason: str) -> None:
        project.read_only, project.read_only_reason = True, reason
        project._writable_probe = self.ensure_writable  # a direct mutation may end read-only mode too
        with self._guard:
            self._read_only[str(Path(project.path))] = reason
            self._last_probe[str(Path(project.path))] = self.clock()
        _log.warning(
            "project %s is read-only: %s",
            project.path,
            reason,
            extra={"error_code": "E207", "cde_state_path": project.path},
        )

    def _clear_read_only(self, project: Project) -> None:
        was_read_only = project.read_only
        project.read_only, project.read_only_reason = False, None
        with self._guard:
            was_read_only = self._read_only.pop(str(Path(project.path)), None) is not None or was_read_only
        if was_read_only:
            _log.info("project %s is writable again; read-only mode ended", project.path)

    def _enter_read_only(self, project: Project, cause: StateError) -> ReadOnlyModeError:
        reason = self._reason(cause)
        self._mark_read_only(project, reason)
        return ReadOnlyModeError(
            f"storage refused to save project {project.name!r} ({reason}); the project is now read-only: "
            "queries work, mutations are refused until a probe write succeeds",
            "E207",
            {"project_id": project.id, "path": project.path, "operation": "save", "reason": reason,
             "errno": cause.context.get("errno")},
            snapshot=project.snapshot(),
        )  # fmt: skip

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
