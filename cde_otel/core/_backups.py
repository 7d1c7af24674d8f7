"""Checksummed state backups in ``.cde/backups/``: written after each save, kept up to a retention.

A backup is a complete state document (the same format as ``state.json``), named
``state-r<revision:08d>-<UTC stamp>.json``, so any valid backup is a drop-in state file.
The state file is the commit point: a backup that cannot be written is logged on
``cde_otel.state``, never a failed save.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cde_otel._exceptions import StateError, quote
from cde_otel.core import state, storage
from cde_otel.core._validation import bounded
from cde_otel.core.model import Project

_BACKUP_NAME = re.compile(r"^state-r(?P<revision>\d{8})-(?P<stamp>\d{8}T\d{6}\d{6}Z)\.json$")
_STAMP = "%Y%m%dT%H%M%S%fZ"
MAX_BACKUP_NAME_LENGTH = 255
_log = logging.getLogger("cde_otel.state")


@dataclass(frozen=True, slots=True)
class BackupInfo:
    name: str
    path: Path
    revision: int
    created_at: datetime
    size_bytes: int


class BackupStore:
    """Lists, reads, writes and rotates the backups of a project's ``backups`` directory."""

    def __init__(self, retention: int) -> None:
        self.retention = retention

    def scan(self, backup_dir: Path) -> list[BackupInfo]:
        """The backups in ``backup_dir``, newest first (none when the directory does not exist)."""
        found: list[BackupInfo] = []
        try:
            entries = list(backup_dir.iterdir())
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise storage.state_error(exc, path=backup_dir, operation="list backups") from exc
        for entry in entries:
            match = _BACKUP_NAME.match(entry.name)
            if match is None:
                continue
            created = datetime.strptime(match["stamp"], _STAMP).replace(tzinfo=UTC)
            try:
                size = entry.stat().st_size
            except OSError:
                continue  # rotated away while listing
            found.append(BackupInfo(entry.name, entry, int(match["revision"]), created, size))
        found.sort(key=lambda b: (b.revision, b.created_at), reverse=True)
        return found

    def newest_revision(self, backup_dir: Path) -> int:
        backups = self.scan(backup_dir)
        return backups[0].revision if backups else 0

    def load(self, backup_dir: Path, name: str) -> Project:
        """Reads and validates one backup: E209 when it does not exist or is damaged."""
        if not isinstance(name, str):  # a list or dict would otherwise surface as a raw TypeError from Path()
            raise StateError(
                f"a backup name is text, not {type(name).__name__}",
                "E209",
                {"path": str(backup_dir), "backup": quote(name), "reason": "a backup name is text"},
            )
        bounded(name, what="backup", max_length=MAX_BACKUP_NAME_LENGTH)
        candidate = backup_dir / Path(name).name
        if _BACKUP_NAME.match(candidate.name) is None or not candidate.is_file():
            raise StateError(
                f"no backup named {quote(name)} in {backup_dir}", "E209", {"path": str(backup_dir), "backup": name}
            )
        try:
            project, revision = state.decode(state.read_regular(candidate), source=str(candidate))
        except StateError as exc:
            raise StateError(
                f"backup {candidate.name} is damaged: {exc.message}",
                "E209",
                {"path": str(backup_dir), "backup": candidate.name, "reason": exc.message},
            ) from exc
        except OSError as exc:
            raise storage.state_error(exc, path=candidate, operation="read backup") from exc
        state.relocated(project, backup_dir.parent.parent, announce=False)  # restored where it is now
        project.revision = revision
        return project

    @staticmethod
    def newest_valid_of(
        backups: list[BackupInfo], project_id: str | None, root: Path
    ) -> tuple[tuple[BackupInfo, Project] | None, int]:
        """The newest valid backup of project ``project_id`` in ``backups`` (newest first), with its project,
        and how many valid backups of other projects were passed over.

        ``project_id`` None (the state names no project any more): the project all valid backups
        belong to, or else the one whose backups were saved at ``root`` itself; None when that
        does not tell one project (which is this project's cannot be told).
        """
        valid: list[tuple[BackupInfo, Project]] = []
        for backup in backups:
            try:
                project, _ = state.decode(state.read_regular(backup.path), source=str(backup.path))
            except (StateError, OSError):
                continue
            if project_id is not None and project.id == project_id:
                return (backup, project), len(valid)
            valid.append((backup, project))
        if project_id is None and valid:
            owners = {project.id for _, project in valid}
            if len(owners) > 1:
                owners = {project.id for _, project in valid if project.path == str(root)}
            if len(owners) == 1:
                (owner,) = owners
                mine = [entry for entry in valid if entry[1].id == owner]
                return mine[0], len(valid) - len(mine)
        return None, len(valid)

    def write_after_commit(self, backup_dir: Path, revision: int, data: bytes) -> None:
        """Writes a backup of the committed ``data``; a failure is logged, never raised."""
        try:
            self._write(backup_dir, revision, data)
        except OSError as exc:
            error = storage.state_error(exc, path=backup_dir, operation="backup")
            _log.warning(
                "state saved but its backup was not written: %s",
                error,
                extra={"error_code": error.code, "cde_state_path": str(backup_dir), "revision": revision},
            )

    def _write(self, backup_dir: Path, revision: int, data: bytes) -> None:
        backup_dir.mkdir(exist_ok=True)
        storage.remove_stale_temp_files(backup_dir)
        stamp = datetime.now(UTC).strftime(_STAMP)
        storage.atomic_write(backup_dir / f"state-r{revision:08d}-{stamp}.json", data)
        for stale in self.scan(backup_dir)[self.retention :]:
            stale.path.unlink(missing_ok=True)
