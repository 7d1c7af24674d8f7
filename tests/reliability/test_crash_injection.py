"""SIGKILL a process saving in a loop at hundreds of random instants: no save that returned is lost.

Each child is killed at a random instant after it has acknowledged its first save, so every kill lands
inside the save loop however slow the machine is (a kill before the loop starts would prove nothing).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cde_otel.core import FileSystemProjectRepository

pytestmark = pytest.mark.reliability

KILLS = 220
MAX_DELAY_S = 0.1  # a save takes ~20 ms with its fsyncs on ext4: kills land across several saves
PROGRESS_DEADLINE_S = 60.0  # for a child's first save: generous, a guard against a hang only


def test_sigkill_during_saves_never_loses_an_acknowledged_save(tmp_path: Path) -> None:
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    FileSystemProjectRepository().get_or_create(project_dir, name="counter-0")
    ack_file = tmp_path / "ack"
    ack_file.write_bytes(b"0" * 12)
    zygote = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("_crash_zygote.py")), str(project_dir), str(ack_file)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("CDE_OTEL_")},
    )
    assert zygote.stdin is not None
    assert zygote.stdout is not None
    rng = random.Random(20240607)
    kills_in_flight = 0  # kills that landed after a save's rename and before its acknowledgement
    previous_ack = previous_loaded = 0
    try:
        for kill in range(KILLS):
            zygote.stdin.write("run\n")
            zygote.stdin.flush()
            pid = int(zygote.stdout.readline())
            deadline = time.monotonic() + PROGRESS_DEADLINE_S
            while int(ack_file.read_bytes()) == previous_ack:  # the child is in its save loop
                assert time.monotonic() < deadline, f"child {pid} acknowledged no save"
                time.sleep(0.001)
            time.sleep(rng.uniform(0, MAX_DELAY_S))  # the random instant: not a wait for a result
            os.kill(pid, signal.SIGKILL)
            reaped = zygote.stdout.readline().split()
            assert reaped[0] == "reaped"
            status = int(reaped[1])
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"child died by itself: {status}"

            repo = FileSystemProjectRepository()
            project = repo.get_by_path(project_dir)  # every load succeeds
            assert project is not None
            assert repo.recoveries == [], "atomic writes alone must keep the state valid"
            loaded = int(project.name.removeprefix("counter-"))
            acknowledged = int(ack_file.read_bytes())
            # never behind a save that returned, never behind what was already durable,
            # and at most the one in-flight save ahead of what this child started from or acknowledged
            assert loaded >= acknowledged, (kill, acknowledged, loaded)
            assert loaded >= previous_loaded, (kill, previous_loaded, loaded)
            assert loaded <= max(acknowledged, previous_loaded) + 1, (kill, acknowledged, previous_loaded, loaded)
            kills_in_flight += loaded > acknowledged
            previous_ack, previous_loaded = acknowledged, loaded
    finally:
        zygote.stdin.write("quit\n")
        zygote.stdin.close()
        zygote.wait(timeout=30)
    assert kills_in_flight >= 1, "no kill landed between a save's commit and its acknowledgement"
    # a kill between a backup's write and the pruning leaves extras; the next save restores the bounds
    repo = FileSystemProjectRepository()
    project = repo.get_by_path(project_dir)
    assert project is not None
    repo.save(project)
    assert 1 <= len(repo.list_backups(project_dir)) <= repo.backup_retention
    assert not list((project_dir / ".cde").glob(".*.tmp")), "temp files of killed writers are swept"
    assert not list((project_dir / ".cde" / "backups").glob(".*.tmp"))
