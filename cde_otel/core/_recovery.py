"""Automatic recovery of a damaged state file from the newest valid backup.

A corrupt, truncated, invalid or unsupported ``state.json`` (E203/E204/E205), or one that
vanished while backups remain, is restored on load, under the state lock: the bad file is
kept as ``state.json.corrupt-<UTC stamp>`` (a second name; it stays in place until the
recovered state atomically replaces it), the recovered state is written back as a new
revision, and a ``StateError`` E208 is appended to :attr:`StateRecovery.recoveries` and
logged as a warning on ``cde_otel.state`` with ``extra={"error_code": "E208", ...}``.
Without a valid backup the coded load error is raised: a damaged state is never silently
replaced by a new empty project. When the recovered state cannot be written back (the
storage refuses writes), it is served read-only and the bad file stays where it was, so no
reader ever finds "no project yet"; the recovered project's first successful save completes
the recovery (:meth:`StateRecovery.pending_for`).

Only a backup of the same project is ever used: the project id the damaged file still names
(or, when it names none, the one the repository last loaded or saved there; else the one id
all valid backups share). When no valid backup has it but backups of other projects exist,
recovery refuses with E212 and the path is reported read-only (nothing is written; an
operator restores a backup explicitly: ``cde-otel state restore``).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from pathlib import Path

from cde_otel._exceptions import StateError
from cde_otel.core import state, storage
from cde_otel.core._backups import BackupInfo, BackupStore
from cde_otel.core._read_only import reason_of
from cde_otel.core.model import Project

#: Load errors that recovery from a backup repairs.
RECOVERABLE_LOAD_CODES = frozenset({"E203", "E204", "E205"})
MAX_RECOVERIES_KEPT = 100
CORRUPT_LABEL = "corrupt"
_log = logging.getLogger("cde_otel.state")


class StateRecovery:
    """Repairs a project's state from its backups; the caller holds the state lock."""

    def __init__(
        self,
        backups: BackupStore,
        *,
        remember: Callable[[Project, bytes], None],
        enter_read_only: Callable[[Project, str], None],
        refuse: Callable[[Path, str], None],
    ) -> None:
        self._backups = backups
        self._remember = remember
        self._enter_read_only = enter_read_only
        self._refuse = refuse
        self._lock = threading.Lock()
        #: state file -> the recovered project whose write the storage refused (served read-only).
        self._pending: dict[str, weakref.ref[Project]] = {}
        #: E208 warnings, oldest first, one per recovery (the newest :data:`MAX_RECOVERIES_KEPT`).
        self.recoveries: list[StateError] = []

    def recover_locked(self, state_file: Path, backup_dir: Path, cause: StateError, known_id: str | None) -> Project:
        """Restores ``state_file`` from this project's newest valid backup; ``known_id`` is the project id
        the repository last saw there (used when the damaged file names none)."""
        raw: bytes | None = None
        try:  # another process may have repaired it while we waited for the lock
            raw = state.read_regular(state_file)
            repaired, repaired_revision = state.decode(raw, source=str(state_file))
        except (FileNotFoundError, StateError):
            pass
        else:
            state.relocated(repaired, state_file.parent.parent)
            repaired.revision = repaired_revision
            self._remember(repaired, raw)
            return repaired
        owner = (state.project_id_in(raw) if raw is not None else None) or known_id
        backups = self._backups.scan(backup_dir)
        found, foreign = self._backups.newest_valid_of(backups, owner, state_file.parent.parent)
        if found is None and foreign:
            raise self._refused(state_file, cause, owner, len(backups), foreign)
        if found is None:
            raise StateError(
                f"{cause.message}; no valid backup to recover from ({len(backups)} checked)",
                cause.code,
                {**cause.context, "backups_checked": len(backups)},
            ) from cause
        chosen, project = found
        state.relocated(project, state_file.parent.parent)
        revision = max(b.revision for b in backups) + 1
        data = state.encode(project, revision)
        kept: Path | None = None
        try:
            kept = storage.keep_aside(state_file, CORRUPT_LABEL)
            storage.atomic_write(state_file, data)
        except OSError as exc:
            if not storage.is_storage_unavailable(exc):
                raise
            # Readable but not writable: serve the recovered state read-only until storage is back. The bad
            # file is still in place, so the project's first successful save must replace it (pending_for).
            project.revision = chosen.revision
            with self._lock:
                self._pending[str(state_file)] = weakref.ref(project)
            self._enter_read_only(project, reason_of(storage.state_error(exc, path=state_file, operation="recover")))
            self._record(state_file, chosen, cause, kept, persisted=False)
            return project
        self._backups.write_after_commit(backup_dir, revision, data)
        project.revision = revision
        self._remember(project, data)
        self._record(state_file, chosen, cause, kept, persisted=True)
        return project

    def _refused(
        self, state_file: Path, cause: StateError, owner: str | None, checked: int, foreign: int
    ) -> StateError:
        whose = f"project {owner}" if owner else "this project (the backups belong to several projects)"
        error = StateError(
            f"state file {state_file} is bad ({cause.code}) and no valid backup of {whose} exists ({checked} "
            f"checked, {foreign} of another project ignored); nothing was recovered, the project is read-only",
            "E212",
            {"path": str(state_file), "cause_code": cause.code, "project_id": owner,
             "backups_checked": checked, "foreign_backups": foreign},
        )  # fmt: skip
        error.__cause__ = cause
        self._refuse(state_file.parent.parent, f"recovery refused (E212): {cause.code} and no backup of its own")
        _log.error(str(error), extra={"error_code": "E212", "cde_state_path": str(state_file)})
        return error

    def pending_for(self, state_file: Path, project: Project) -> bool:
        """True when ``project`` is the recovered state that could not replace the bad ``state_file`` yet."""
        with self._lock:
            entry = self._pending.get(str(state_file))
        return entry is not None and entry() is project

    def settled(self, state_file: Path) -> None:
        """``state_file`` was written: nothing is pending for it any more."""
        with self._lock:
            self._pending.pop(str(state_file), None)

    def _record(
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
        with self._lock:
            self.recoveries.append(warning)
            del self.recoveries[:-MAX_RECOVERIES_KEPT]
        _log.warning(
            str(warning),
            extra={"error_code": "E208", "cde_state_path": str(state_file), "backup": backup.name,
                   "cause_code": cause.code, "corrupt_copy": str(kept) if kept else None},
        )  # fmt: skip
