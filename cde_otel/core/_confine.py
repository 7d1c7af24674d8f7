"""Confinement of client-given project paths to the directories a server was allowed to use.

    roots = ProjectRoots([Path("/work/app")])
    roots.confine("sub/dir")        # /work/app/sub/dir (relative paths start at the first root)
    roots.confine("/etc")           # ProjectError E004, nothing touched
    roots.confine("../elsewhere")   # E004 as well: ".." is resolved before the check

The check is on the fully resolved path (``..`` collapsed, every symlink followed), so a link
inside a root that points outside it is outside. Only ``lstat``/``readlink`` run before the
verdict: nothing is created, opened or written. Over-long or malformed path text is refused
(E005, E006) before any of that.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from cde_otel._exceptions import ProjectError, quote
from cde_otel.core._validation import checked_path_text


class ProjectRoots:
    """The resolved directories a server may serve projects in; the first is the default project."""

    def __init__(self, roots: Iterable[str | os.PathLike[str]]) -> None:
        resolved: list[Path] = []
        for root in roots:
            path = _resolve(Path(checked_path_text(root, what="allowed root")).expanduser(), str(root))
            if path not in resolved:
                resolved.append(path)
        if not resolved:
            raise ProjectError("at least one allowed project root is needed", "E004", {"roots": []})
        self.roots: tuple[Path, ...] = tuple(resolved)

    @property
    def default(self) -> Path:
        return self.roots[0]

    def allows(self, path: Path) -> bool:
        """True when the resolved ``path`` is one of the roots or lies under one."""
        return any(path == root or path.is_relative_to(root) for root in self.roots)

    def confine(self, given: str | os.PathLike[str] | None) -> Path:
        """The resolved project path for ``given`` (None: the default root), or E004 when it is outside."""
        if given is None:
            return self.default
        text = checked_path_text(given)
        candidate = Path(text).expanduser()
        if not candidate.is_absolute():
            candidate = self.default / candidate
        resolved = _resolve(candidate, text)
        if not self.allows(resolved):
            raise ProjectError(
                f"project path {quote(text)} is outside the allowed roots ({', '.join(map(str, self.roots))}); "
                "nothing was read or created",
                "E004",
                {"path": quote(text), "resolved": str(resolved), "roots": [str(root) for root in self.roots]},
            )
        return resolved


def _resolve(path: Path, given: str) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        raise ProjectError(
            f"project path {quote(given)} cannot be resolved: {exc}", "E002", {"path": quote(given)}
        ) from exc
