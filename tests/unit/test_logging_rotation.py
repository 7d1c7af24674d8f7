"""PROD-02.5: daily and size rotation with retention, driven by a controlled clock and small sizes."""

from __future__ import annotations

import json
import logging.handlers
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from cde_otel.logging import get_logger, log_file_handlers, reset_logging, setup_logging
from cde_otel.testing import ManualClock


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    reset_logging()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    """Replaces the clock the stdlib rotating handlers read (only inside ``logging.handlers``)."""
    fake = ManualClock(datetime(2026, 1, 1, 10, 0, tzinfo=UTC).timestamp())
    fake_time = SimpleNamespace(time=fake, gmtime=time.gmtime, localtime=time.localtime, strftime=time.strftime)
    monkeypatch.setattr(logging.handlers, "time", fake_time)
    return fake


def events(path: Path) -> list[str]:
    return [json.loads(line)["event"] for line in path.read_text().splitlines()]


def test_log_rotation_works(tmp_path: Path, clock: ManualClock) -> None:
    log_file = tmp_path / "cde.log"
    setup_logging("info", log_file, rotation="daily", retention_days=7, console=False)
    log = get_logger("cde_otel.tests.rotation")

    for day in range(10):  # one line a day, 2026-01-01 .. 2026-01-10
        log.info(f"day {day + 1}")
        clock.advance(timedelta(days=1))
    log_file_handlers()[0].flush()

    rolled = sorted(p.name for p in tmp_path.iterdir() if p.name != "cde.log")
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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cde.log"]
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

    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["cde.log", "cde.log.1", "cde.log.2", "cde.log.3"]
    assert all(p.stat().st_size <= 400 for p in tmp_path.iterdir())
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
    assert type(handler) is logging.FileHandler
    handler.flush()
    assert events(log_file) == ["from before", "appended"]
