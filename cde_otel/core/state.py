"""The on-disk state: where its files live, its lock, and the document's encoding and validation.

``<project>/.cde/state.json`` is the state; ``.cde/backups/`` holds its backups and
``.cde/state.lock`` the cross-process lock (:func:`state_paths`, :func:`state_lock`).

A state document is ``{"schema_version", "revision", "saved_at", "checksum", "project"}``;
the checksum is SHA-256 over the canonical JSON of everything else, so a file
that parses but was damaged (or hand-edited badly) is still caught. Backups use
the same format, which makes any backup a drop-in state file.

Documents are strict JSON (no bare ``NaN``/``Infinity``) in UTF-8. The same rules hold
on load and on save: revisions and schema versions start at 1, workflow types are
known ones, and a feature's status matches its phase (``completed`` only from
``review``; ``failed`` from any phase, with its reason) and so does its history (exactly
the phases before the current one, in order, plus ``review`` once completed; artifacts only
for those). Revisions stay below :data:`~cde_otel.core._validation.MAX_REVISION` (backup
names have 8 digits); ids, names, prompts, paths and artifacts (depth and size) are bounded.
(The rules on ``project`` live in :mod:`cde_otel.core._schema`.) A document that breaks them
is a ``StateError`` E204 on load and a ``ValidationError`` E305 on save, so nothing
the loader would refuse is ever written. Nesting never depends on the caller's
stack depth (see :mod:`cde_otel.core._stack`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import filelock

from cde_otel._exceptions import ProjectError, StateError, ValidationError, quote
from cde_otel.core._schema import field, invalid, project_from
from cde_otel.core._stack import on_fresh_stack
from cde_otel.core._validation import MAX_ID_LENGTH, MAX_REVISION, checked_path_text
from cde_otel.core.model import Project, utcnow

SCHEMA_VERSION = 1
_log = logging.getLogger("cde_otel.state")
STATE_DIR = ".cde"
STATE_FILE = "state.json"
BACKUP_DIR = "backups"
LOCK_FILE = "state.lock"


def state_paths(project_path: str | os.PathLike[str]) -> tuple[Path, Path, Path]:
    """(state dir, state file, backups dir) of a project directory."""
    root = Path(project_path) / STATE_DIR
    return root, root / STATE_FILE, root / BACKUP_DIR


def project_root(path: str | os.PathLike[str]) -> Path:
    """The resolved project directory at ``path``: E001 when it is no directory, E002 when unreadable.

    Over-long (E005) or malformed (E006) path text is refused before any system call sees it.
    """
    if not isinstance(path, str | os.PathLike):
        raise ProjectError("project path must be a non-empty path", "E001", {"path": quote(path)})
    given = checked_path_text(path)
    if not given.strip():
        raise ProjectError("project path must be a non-empty path", "E001", {"path": given})
    shown = quote(given)
    root = Path(given).expanduser()
    try:
        if not root.is_dir():
            raise ProjectError(f"project path {shown} does not exist or is not a directory", "E001", {"path": given})
        root = root.resolve()
    except OSError as exc:
        raise ProjectError(f"project path {shown} is not accessible: {exc.strerror}", "E002", {"path": given}) from exc
    if not os.access(root, os.R_OK | os.X_OK):
        raise ProjectError(f"project path {shown} is not readable", "E002", {"path": given})
    return root


@contextlib.contextmanager
def state_lock(state_dir: Path, timeout: float) -> Iterator[None]:
    """The cross-process lock of a project's state; waiting longer than ``timeout`` seconds is E206."""
    lock = filelock.FileLock(str(state_dir / LOCK_FILE), timeout=timeout)
    try:
        lock.acquire()
    except filelock.Timeout as exc:
        raise StateError(
            f"timed out after {timeout}s waiting for the state lock of {state_dir}",
            "E206",
            {"path": str(state_dir / LOCK_FILE), "timeout_s": timeout},
        ) from exc
    try:
        yield
    finally:
        lock.release()


def relocated(project: Project, root: Path, *, announce: bool = True) -> Project:
    """``project`` located at ``root``, the directory it was read from.

    The stored ``path`` is where the project was last saved; a different one means the
    directory was moved or copied, and the project belongs where it is now (logged once
    per load on ``cde_otel.state`` when ``announce``).
    """
    where = str(root)
    if project.path != where:
        if announce:
            _log.warning(
                "project at %s was moved or copied from %s; it is saved at %s from now on",
                where,
                project.path,
                where,
                extra={"cde_state_path": where, "stored_path": project.path},
            )
        project.path = where
    return project


def _canonical(payload: dict[str, Any]) -> bytes:
    # Lenient about NaN so any parsed document can be checksummed; loading refuses bare NaN before
    # this runs, and encode() writes with allow_nan=False.
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def checksum(document: dict[str, Any]) -> str:
    body = {k: v for k, v in document.items() if k != "checksum"}
    return "sha256:" + hashlib.sha256(_canonical(body)).hexdigest()


def encode(project: Project, revision: int) -> bytes:
    """The state document of ``project`` at ``revision``; ``ValidationError`` E305 if it could not be loaded back."""
    document: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "revision": revision,
        "saved_at": utcnow().isoformat(),
        "project": project.to_dict(),
    }
    try:
        return on_fresh_stack(lambda: _encoded(document))
    except StateError as exc:
        reason = exc.context.get("reason") or exc.message
        raise ValidationError(
            f"project {project.name!r} cannot be saved: {reason}",
            "E305",
            {"field": "project", "reason": reason, "project_id": project.id},
        ) from exc
    except (TypeError, ValueError, RecursionError) as exc:  # NaN, lone surrogates, unserialisable objects
        raise ValidationError(
            f"project {project.name!r} cannot be saved as JSON text: {exc}",
            "E305",
            {"field": "project", "reason": str(exc), "project_id": project.id},
        ) from exc


def _encoded(document: dict[str, Any]) -> bytes:
    project_from(document["project"], "the project to save")  # what is written must load back
    document["checksum"] = checksum(document)
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False).encode() + b"\n"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode(raw: bytes, *, source: str) -> tuple[Project, int]:
    """Parses and validates a state document; any defect is a coded ``StateError``, never another exception."""
    try:
        return _decode(raw, source)
    except StateError:
        raise
    except Exception as exc:  # whatever the validation below missed is still a schema defect
        raise StateError(
            f"state file {source} does not match the schema: {exc!r}", "E204", {"path": source, "reason": repr(exc)}
        ) from exc


def _decode(raw: bytes, source: str) -> tuple[Project, int]:
    try:
        return on_fresh_stack(lambda: _decoded(raw, source))
    except RecursionError as exc:  # deeper than any stack can parse: not a document this package wrote
        raise StateError(
            f"state file {source} is nested too deeply to load", "E204", {"path": source, "reason": "nested too deeply"}
        ) from exc


def _decoded(raw: bytes, source: str) -> tuple[Project, int]:
    try:
        document = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise StateError(
            f"state file {source} is not valid JSON: {exc}", "E203", {"path": source, "reason": str(exc)}
        ) from exc
    if not isinstance(document, dict):
        raise invalid(source, "document", "an object")
    version = document.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise invalid(source, "schema_version", "a positive integer")
    if version > SCHEMA_VERSION:
        raise StateError(
            f"state file {source} has schema version {version}; this cde-otel reads up to {SCHEMA_VERSION}",
            "E205",
            {"path": source, "schema_version": version, "supported": SCHEMA_VERSION},
        )
    try:
        expected = checksum(document)
    except UnicodeEncodeError as exc:  # an escaped lone surrogate ("\\udc80") in the file
        raise invalid(source, "text", f"valid Unicode ({exc.reason})") from exc
    if document.get("checksum") != expected:
        raise StateError(
            f"state file {source} fails its checksum", "E203", {"path": source, "reason": "checksum mismatch"}
        )
    revision = field(document, "revision", int, source)
    if not 1 <= revision <= MAX_REVISION:
        raise invalid(source, "revision", f"a positive integer of at most {MAX_REVISION}")
    project_doc = field(document, "project", dict, source)
    try:
        return project_from(project_doc, source), revision
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StateError(
            f"state file {source} does not match the schema: {exc!r}",
            "E204",
            {"path": source, "reason": repr(exc)},
        ) from exc


def project_id_in(raw: bytes) -> str | None:
    """The project id a (possibly damaged) state document still names, or None when it names none.

    Used to tell this project's backups from another's when the state itself cannot be loaded.
    """
    try:
        document = on_fresh_stack(lambda: json.loads(raw.decode("utf-8")))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    project = document.get("project") if isinstance(document, dict) else None
    found = project.get("id") if isinstance(project, dict) else None
    return found if isinstance(found, str) and 0 < len(found) <= MAX_ID_LENGTH else None


def read_regular(path: Path) -> bytes:
    """The bytes of the regular file ``path``; E214 for a FIFO, device or socket (reading one could block forever).

    ``FileNotFoundError`` and other ``OSError`` are raised as they are.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            if stat.S_ISDIR(mode):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
            raise StateError(
                f"{path} is not a regular file ({_kind(mode)}); it was not read",
                "E214",
                {"path": str(path), "kind": _kind(mode)},
            )
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as stream:
            return stream.read()
    finally:
        os.close(fd)


def revision_on_disk(state_file: Path) -> int:
    """The revision of the project saved in ``state_file``; 0 when there is none."""
    try:
        raw = read_regular(state_file)
    except FileNotFoundError:
        return 0
    _, revision = decode(raw, source=str(state_file))
    return revision


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):  # fmt: skip
        if test(mode):
            return name
    return "not a regular file"
