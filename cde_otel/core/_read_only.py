"""Read-only bookkeeping of a repository: which projects, why, and when each was last probed.

A project enters read-only mode when the storage refuses a write (E210: ENOSPC, EROFS,
EACCES, EPERM, EDQUOT) and leaves it when a probe write succeeds. Probes are rate-limited
to one per ``probe_interval_s`` per project on an injectable clock. Transitions are
logged on ``cde_otel.state`` (``error_code`` E207 on entry).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from cde_otel._exceptions import ReadOnlyModeError, StateError
from cde_otel.core.model import Project

_log = logging.getLogger("cde_otel.state")


def project_key(project: Project) -> str:
    return str(Path(project.path))


def reason_of(error: StateError) -> str:
    """A one-line reason from a storage error's context: ``ENOSPC (No space left...) on /path``."""
    return f"{error.context.get('errno')} ({error.context.get('reason')}) on {error.context.get('path')}"


def read_only_error(project: Project, cause: StateError, reason: str) -> ReadOnlyModeError:
    """The E207 a save refused by the storage raises (``cause``: the E210), with the project's snapshot."""
    return ReadOnlyModeError(
        f"storage refused to save project {project.name!r} ({reason}); the project is now read-only: "
        "queries work, mutations are refused until a probe write succeeds",
        "E207",
        {"project_id": project.id, "path": project.path, "operation": "save", "reason": reason,
         "errno": cause.context.get("errno")},
        snapshot=project.snapshot(),
    )  # fmt: skip


class ReadOnlyTracker:
    def __init__(self, clock: Callable[[], float], probe_interval_s: float) -> None:
        self.clock = clock
        self.probe_interval_s = probe_interval_s
        self._lock = threading.Lock()
        self._reasons: dict[str, str] = {}
        self._last_probe: dict[str, float] = {}

    def reasons(self) -> dict[str, str]:
        """``{project path: reason}`` of every project held read-only."""
        with self._lock:
            return dict(self._reasons)

    def reason(self, key: str) -> str | None:
        with self._lock:
            return self._reasons.get(key)

    def probe_due(self, project: Project) -> bool:
        with self._lock:
            last = self._last_probe.get(project_key(project))
        return last is None or self.clock() - last >= self.probe_interval_s

    def probing(self, project: Project) -> None:
        """Notes that a probe of ``project`` starts now (the rate limit counts from here)."""
        with self._lock:
            self._last_probe[project_key(project)] = self.clock()

    def enter(self, project: Project, reason: str, probe: Callable[[Project], bool]) -> None:
        """Marks ``project`` read-only; ``probe`` lets a refused mutation end the mode itself."""
        project.mark_read_only(reason, probe)
        key = project_key(project)
        with self._lock:
            self._reasons[key] = reason
            self._last_probe[key] = self.clock()
        _log.warning(
            "project %s is read-only: %s",
            project.path,
            reason,
            extra={"error_code": "E207", "cde_state_path": project.path},
        )

    def refuse(self, key: str, reason: str) -> None:
        """Reports the project at ``key`` read-only when no project object can be served (recovery refused)."""
        with self._lock:
            self._reasons[key] = reason
        _log.warning("project %s is read-only: %s", key, reason, extra={"error_code": "E207", "cde_state_path": key})

    def saved(self, project: Project) -> None:
        """A save of ``project`` succeeded: its path is writable and loadable again."""
        if not project.read_only:
            with self._lock:
                self._reasons.pop(project_key(project), None)

    def leave(self, project: Project) -> None:
        was_read_only = project.read_only
        project.mark_writable()
        with self._lock:
            was_read_only = self._reasons.pop(project_key(project), None) is not None or was_read_only
        if was_read_only:
            _log.info("project %s is writable again; read-only mode ended", project.path)
