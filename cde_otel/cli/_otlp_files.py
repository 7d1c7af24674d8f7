"""Streaming reads of the embedded default's OTLP-JSON files, rotated ones included.

Layout (written by the telemetry package): signal ``S`` (traces, metrics, logs) goes to ``S.jsonl``;
rotated files are ``S.<anything>.jsonl``, closed and never written again. Every line is one complete
OTLP/JSON export request, except perhaps a truncated last line of the file being written: such a
line (and any other line that is not a JSON object) is skipped and counted, never an error.

Files are read line by line (never whole), oldest first by modification time, then name.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from cde_otel._exceptions import error_for


@dataclass(slots=True)
class ReadStats:
    """What a read went through: files, lines parsed and lines skipped (truncated or not JSON)."""

    files: list[str] = field(default_factory=list)
    lines: int = 0
    skipped: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"files": list(self.files), "lines": self.lines, "skipped_lines": self.skipped}


def check_directory(directory: Path) -> Path:
    """``directory`` itself, or E401 (missing) / E402 (not a readable directory)."""
    try:
        if not directory.is_dir():
            reason = "it does not exist" if not directory.exists() else "it is not a directory"
            raise error_for("E401", path=str(directory), reason=reason, parent=str(directory.parent))
        with os.scandir(directory) as entries:
            next(entries, None)
    except PermissionError as error:
        raise error_for("E402", path=str(directory), reason=os.strerror(error.errno or errno.EACCES)) from error
    return directory


def signal_files(directory: Path, signal: str) -> list[Path]:
    """``signal.jsonl`` and every rotated ``signal.*.jsonl``, oldest first (mtime, then name).

    E403 when the directory holds none: nothing of that signal was recorded there.
    """
    check_directory(directory)
    found: list[tuple[float, str, Path]] = []
    with os.scandir(directory) as entries:
        for entry in entries:
            name = entry.name
            if name == f"{signal}.jsonl" or (name.startswith(f"{signal}.") and name.endswith(".jsonl")):
                try:
                    found.append((entry.stat().st_mtime, name, Path(entry.path)))
                except FileNotFoundError:  # dropped by rotation between the listing and the stat
                    continue
    if not found:
        raise error_for("E403", path=str(directory), signal=signal)
    return [path for _, _, path in sorted(found)]


def iter_lines(path: Path, stats: ReadStats) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(offset, request)`` per complete JSON line of ``path``; a file gone meanwhile yields nothing."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:  # the oldest file was dropped by rotation after the listing
        return
    except PermissionError as error:
        raise error_for("E402", path=str(path), reason=os.strerror(error.errno or errno.EACCES)) from error
    stats.files.append(str(path))
    with handle:
        offset = 0
        for raw in handle:  # one line at a time: memory is bounded by the longest line (one export batch)
            at, offset = offset, offset + len(raw)
            try:
                request = orjson.loads(raw)
            except orjson.JSONDecodeError:
                stats.skipped += 1
                continue
            if isinstance(request, dict):
                stats.lines += 1
                yield at, request
            else:
                stats.skipped += 1


def iter_requests(directory: Path, signal: str, stats: ReadStats | None = None) -> Iterator[dict[str, Any]]:
    """Every export request of ``signal`` in ``directory``, oldest file first."""
    stats = stats if stats is not None else ReadStats()
    for path in signal_files(directory, signal):
        for _, request in iter_lines(path, stats):
            yield request
