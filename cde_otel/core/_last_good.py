"""The versions a repository can roll back to: per live project object, the bytes it last
loaded or saved (forgotten with the object), and per project directory the id of the project
last there (tells its backups from another project's). Thread-safe."""

from __future__ import annotations

import threading
import weakref
from typing import Any

from cde_otel.core import state
from cde_otel.core.model import Project


class LastGoodVersions:
    """What :meth:`~cde_otel.core.repository.FileSystemProjectRepository.rollback` returns to."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: dict[int, tuple[weakref.ref[Project], bytes]] = {}
        #: project directory -> the id of the project last loaded or saved there.
        self._ids: dict[str, str] = {}

    def remember(self, project: Project, data: bytes) -> None:
        """Keeps ``data`` as the version ``rollback(project)`` returns to, while the object lives."""
        key = id(project)
        with self._lock:
            self._ids[project.path] = project.id

        def forget(_ref: weakref.ref[Project], key: int = key, registry: dict[Any, Any] = self._versions) -> None:
            registry.pop(key, None)

        with self._lock:
            self._versions[key] = (weakref.ref(project, forget), data)

    def size_of(self, project: Project) -> int | None:
        """The size of the version kept under ``project``'s id, None when there is none."""
        with self._lock:
            good = self._versions.get(id(project))
        return len(good[1]) if good else None

    def known_id(self, root: str) -> str | None:
        """The id of the project last loaded or saved in the directory ``root``."""
        with self._lock:
            return self._ids.get(root)

    def rollback(self, project: Project) -> bool:
        """Puts ``project`` back, in place, to the version kept for it; False when there is none."""
        with self._lock:
            entry = self._versions.get(id(project))
        if entry is None or entry[0]() is not project:
            return False
        good, revision = state.decode(entry[1], source="last good version")
        project.restore_from(good)
        project.revision = revision
        return True
