"""PROD-02.5: daily and size rotation with retention, driven by a controlled clock and small sizes.

The multi-process tests run two real writer processes on one file while it rotates: no line lost
or duplicated, none torn or interleaved, retention respected.
"""

from __future__ import annotations

import json
import logging.handlers
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import concurrent_log_handler
import pytest

from cde_otel.logging import get_logger, log_file_handlers, reset_logging, setup_logging
from cde_otel.logging._handlers import lock_file_for
from cde_otel.testing import ManualClock


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    reset_logging()


class _TimeModule:
    """The ``time`` module with ``time()`` read from a :class:`ManualClock`."""

    def __init__(self, clock: ManualClock) -> None:
        self._clock = clock

    def time(self) -> float:
        return self._clock()

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    """Replaces the clock the rotating handlers read (only inside ``logging.handlers`` and the handler library)."""
    fake = ManualClock(datetime(2026, 1, 1, 10, 0, tzinfo=UTC).timestamp())
    monkeypatch.setattr(logging.handlers, "time", _TimeModule(fake))
    monkeypatch.setattr(concurrent_log_handler, "time", _TimeModule(fake))
    return fake


def events(path: Path) -> list[str]:
    return [json.loads(line)["event"] for line in path.read_text().splitlines()]


def log_files(directory: Path) -> list[str]:
    """The log files in ``directory``, without the handlers' hidden lock file."""
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith(".__"))


def test_log_rotation_works(tmp_path: Path, clock: ManualClock) -> None:
    log_file = tmp_path / "cde.log"
    setup_logging("info", log_file, rotation="daily", retention_days=7, console=False)
    log = get_logger("cde_otel.tests.rotation")

    for day in range(10):  # one line a day, 2026-01-01 .. 2026-01-10
        log.info(f"day {day + 1}")
        clock.advance(timedelta(days=1))
    log_file_handlers()[0].flush()

    rolled = [name for name in log_files(tmp_path) if name != "cde.log"]
    # Days 1..9 were rolled over at each UTC midnight; retention keeps the newest 7 (days 3..9).
    assert rolled == [f"cde.log.2026-01-{day:02d}" for day in range(3, 10)]
    assert events(tmp_path / "cde.log.2026-01-03") == ["day 3"]
    assert events(tmp_path / "cde.log.2026-01-09") == ["day 9"]
    assert events(log_file) == ["day 10"]


def test_daily_rotation_waits_for_utc_midnight(tmp_path: Path, clock: ManualClock) -> None:
    log_file = tmp_path / "cde.log"
    setup_logging("info", log_file, rotation="daily", retention_days=7, console=False)
    log = get_logger("cde_otel.tests.rotation")

    log.info("morning")
    clock.advance(timedelta(hours=13, minutes=59))  # 23:59 UTC, same day
    log.info("late evening")
    assert log_files(tmp_path) == ["cde.log"]
    clock.advance(timedelta(minutes=2))  # 00:01 UTC next day
    log.info("after midnight")

    log_file_handlers()[0].flush()
    assert events(tmp_path / "cde.log.2026-01-01") == ["morning", "late evening"]
    assert events(log_file) == ["after midnight"]


def test_size_rotation_keeps_retention_files(tmp_path: Path) -> None:
    log_file = tmp_path / "cde.log"
    setup_logging("info", log_file, rotation="size", max_bytes=400, retention_days=3, console=False)
    log = get_logger("cde_otel.tests.rotation")

    for n in range(40):
        log.info(f"line {n:03d}")
    log_file_handlers()[0].flush()

    assert log_files(tmp_path) == ["cde.log", "cde.log.1", "cde.log.2", "cde.log.3"]
    # A file rolls over once it has reached max_bytes: it may exceed it by at most its last line.
    longest = max(len(line) + 1 for name in log_files(tmp_path) for line in (tmp_path / name).read_text().splitlines())
    assert all((tmp_path / name).stat().st_size < 400 + longest for name in log_files(tmp_path))
    newest_first = [events(log_file), *(events(tmp_path / f"cde.log.{i}") for i in (1, 2, 3))]
    kept = [event for chunk in reversed(newest_first) for event in chunk]
    assert kept[-1] == "line 039"
    assert kept == [f"line {n:03d}" for n in range(40 - len(kept), 40)]  # contiguous, oldest dropped
    assert len(kept) < 40


def test_no_rotation_appends(tmp_path: Path) -> None:
    log_file = tmp_path / "cde.log"
    log_file.write_text(json.dumps({"event": "from before"}) + "\n")
    setup_logging("info", log_file, rotation="none", console=False)
    get_logger("x").info("appended")
    (handler,) = log_file_handlers()
    assert type(handler) is logging.handlers.WatchedFileHandler  # reopens after an external logrotate
    handler.flush()
    assert events(log_file) == ["from before", "appended"]


def test_the_lock_file_sits_next_to_the_log_file(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "cde.log"
    setup_logging("info", log_file, rotation="size", max_bytes=10_000, retention_days=2, console=False)
    get_logger("x").info("one line")
    assert lock_file_for(log_file) == tmp_path / "logs" / ".__cde.lock"
    assert sorted(p.name for p in log_file.parent.iterdir()) == [".__cde.lock", "cde.log"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs"]


# -- several writer processes ------------------------------------------------------------------------
_WRITER = """
import json, os, sys, time
from pathlib import Path
log_file, rotation, max_bytes, retention, writer, count, go = sys.argv[1:8]
if rotation == "daily":  # a clock that crosses UTC midnight while the two processes write
    import logging.handlers, concurrent_log_handler
    class T:
        now = 1767297600.0 - 0.5 * int(count) * 60  # 2026-01-01T20:00Z minus half the run at 1 min per line
        def time(self): return T.now
        def __getattr__(self, name): return getattr(time, name)
    logging.handlers.time = concurrent_log_handler.time = T()
from cde_otel.logging import get_logger, setup_logging
setup_logging("info", log_file, rotation=rotation, max_bytes=int(max_bytes), retention_days=int(retention),
              console=False, otel=False)
log = get_logger("writer")
deadline = time.monotonic() + 30
while not Path(go).exists() and time.monotonic() < deadline:  # both start writing together
    time.sleep(0.001)
padding = "x" * (int(writer) * 150)  # writers' lines differ in length: a torn line would not parse
for seq in range(int(count)):
    log.info("line", writer=int(writer), seq=seq, padding=padding)
    if rotation == "daily":
        T.now += 60 + 30 * int(writer)  # each process has its own, slightly different, clock
"""


def _run_writers(tmp_path: Path, rotation: str, max_bytes: int, retention: int, count: int) -> Path:
    log_file = tmp_path / "shared" / "cde.log"
    go = tmp_path / "go"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDE_OTEL_", "OTEL_"))}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, *map(str, (log_file, rotation, max_bytes, retention, writer, count, go))],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for writer in (1, 2)
    ]
    time.sleep(0.5)  # both processes import and set logging up while the barrier is closed
    go.touch()
    for proc in writers:
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        assert "Traceback" not in stderr, stderr
    return log_file


def _lines_by_writer(directory: Path) -> dict[int, list[int]]:
    seen: dict[int, list[int]] = {1: [], 2: []}
    for name in log_files(directory):
        for line in (directory / name).read_text().splitlines():
            record = json.loads(line)  # a torn or interleaved line fails here
            assert record["padding"] == "x" * (record["writer"] * 150), line[:120]
            seen[record["writer"]].append(record["seq"])
    return seen


def test_two_processes_rotating_by_size_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    count = 1500
    log_file = _run_writers(tmp_path, "size", max_bytes=20_000, retention=1000, count=count)
    files = log_files(log_file.parent)
    assert len(files) > 10, files  # it really rotated while both wrote
    seen = _lines_by_writer(log_file.parent)
    for writer in (1, 2):
        assert sorted(seen[writer]) == list(range(count)), f"writer {writer} lost or duplicated lines"


def test_two_processes_rotating_by_size_keep_retention_files(tmp_path: Path) -> None:
    count, retention = 1500, 3
    log_file = _run_writers(tmp_path, "size", max_bytes=20_000, retention=retention, count=count)
    assert log_files(log_file.parent) == ["cde.log", *(f"cde.log.{i}" for i in range(1, retention + 1))]
    seen = _lines_by_writer(log_file.parent)
    assert seen[1] or seen[2]
    for writer in (1, 2):
        kept = sorted(seen[writer])
        assert len(kept) == len(set(kept)), f"writer {writer} duplicated lines"
        # Only the oldest lines went, with the oldest files: what is kept of a writer (nothing, when the
        # other one wrote the last files alone) runs unbroken to its last line.
        assert kept == list(range(kept[0], count)) if kept else True, f"writer {writer} lost lines in the middle"
    assert len(seen[1]) + len(seen[2]) < 2 * count


def test_two_processes_rotating_daily_split_at_utc_midnight(tmp_path: Path) -> None:
    count = 400
    log_file = _run_writers(tmp_path, "daily", max_bytes=0, retention=7, count=count)
    assert log_files(log_file.parent) == ["cde.log", "cde.log.2026-01-01"]
    seen = _lines_by_writer(log_file.parent)
    for writer in (1, 2):
        assert sorted(seen[writer]) == list(range(count)), f"writer {writer} lost or duplicated lines"
    before = _lines_by_writer_in(log_file.parent / "cde.log.2026-01-01")
    after = _lines_by_writer_in(log_file)
    assert before[1] + before[2] and after[1] + after[2]
    # The file rolls over once, when the first process's clock passes midnight: each writer's lines
    # are split once, older ones in the dated file (none, if the other process got there first).
    for writer in (1, 2):
        if before[writer] and after[writer]:
            assert max(before[writer]) < min(after[writer])


def _lines_by_writer_in(path: Path) -> dict[int, list[int]]:
    seen: dict[int, list[int]] = {1: [], 2: []}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        seen[record["writer"]].append(record["seq"])
    return seen
