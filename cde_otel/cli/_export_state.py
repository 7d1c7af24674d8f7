"""What ``cde-otel export`` already sent: a small JSON file in the local directory.

Per target URL and per file *identity* (device and inode, so a rotation's rename keeps it), the byte
offset up to which every line was delivered, and a fingerprint of the file's first bytes (so a new
file that happens to get a freed inode starts from zero). Saved atomically after every delivered
batch: an export interrupted at any moment resumes after the last batch the collector accepted.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from cde_otel._exceptions import error_for

STATE_FILE = "export-state.json"
LOCK_FILE = ".export.lock"
_VERSION = 1
_HEAD_BYTES = 4096


@dataclass(frozen=True, slots=True)
class FileIdentity:
    key: str  # "device:inode"
    head: str  # sha256 of the first head_len bytes
    head_len: int

    @classmethod
    def of(cls, handle: BinaryIO) -> FileIdentity:
        status = os.fstat(handle.fileno())
        handle.seek(0)
        head = handle.read(_HEAD_BYTES)
        return cls(f"{status.st_dev}:{status.st_ino}", hashlib.sha256(head).hexdigest(), len(head))

    def same_file(self, handle: BinaryIO, recorded: dict[str, Any]) -> bool:
        """True when ``recorded`` (a state entry under this key) describes this very file."""
        length = int(recorded.get("head_len", -1))
        if length < 0 or length > _HEAD_BYTES:
            return False
        handle.seek(0)
        return hashlib.sha256(handle.read(length)).hexdigest() == recorded.get("head")


class ExportState:
    """Offsets per target and file; :meth:`save` after each delivered batch."""

    def __init__(self, directory: Path, target: str) -> None:
        self.path = directory / STATE_FILE
        self.target = target
        self._data: dict[str, Any] = {"version": _VERSION, "targets": {}}
        if self.path.exists():
            self._data = self._load()
        self._files: dict[str, dict[str, Any]] = self._data["targets"].setdefault(target, {"files": {}})["files"]

    def _load(self) -> dict[str, Any]:
        try:
            data = orjson.loads(self.path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as error:
            raise error_for("E409", path=str(self.path), reason=str(error)) from error
        if not isinstance(data, dict) or data.get("version") != _VERSION or not isinstance(data.get("targets"), dict):
            raise error_for("E409", path=str(self.path), reason=f"not a version {_VERSION} export state")
        return data

    def offset(self, identity: FileIdentity, handle: BinaryIO) -> int:
        """Where to resume in this file (0 for a file never seen, or a new file on a reused inode)."""
        recorded = self._files.get(identity.key)
        if recorded is None or not identity.same_file(handle, recorded):
            return 0
        return int(recorded.get("offset", 0))

    def advance(self, identity: FileIdentity, name: str, offset: int) -> None:
        self._files[identity.key] = {
            "offset": offset,
            "head": identity.head,
            "head_len": identity.head_len,
            "name": name,
        }

    def forget_all_but(self, keys: Iterable[str]) -> None:
        """Drops the entries of files that no longer exist (rotated out), so the state stays small."""
        alive = set(keys)
        for key in [key for key in self._files if key not in alive]:
            del self._files[key]

    def save(self) -> None:
        handle, temporary = tempfile.mkstemp(prefix=".export-state.", dir=self.path.parent)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(orjson.dumps(self._data, option=orjson.OPT_INDENT_2))
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
