"""Two processes doing read-modify-save cycles on the same project: no update is lost."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from cde_otel.core import FileSystemProjectRepository
from cde_otel.errors import StateError

pytestmark = pytest.mark.reliability

CYCLES = 40


def increment(path: str, worker: str, cycles: int, start: object, results: object) -> None:
    repo = FileSystemProjectRepository()
    start.wait()  # type: ignore[attr-defined]
    conflicts = 0
    for i in range(cycles):
        while True:  # conflict -> reload and reapply
            project = repo.get_by_path(path)
            assert project is not None
            project.start_feature(f"{worker} increment {i}")
            try:
                repo.save(project)
                break
            except StateError as exc:
                if exc.code != "E202":
                    raise
                conflicts += 1
    results.put((worker, conflicts, os.getpid()))  # type: ignore[attr-defined]


def test_two_processes_never_lose_an_update(tmp_path: Path) -> None:
    project = FileSystemProjectRepository().get_or_create(tmp_path)
    project.activate()
    FileSystemProjectRepository().save(project)
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    results = context.Queue()
    workers = [
        context.Process(target=increment, args=(str(tmp_path), name, CYCLES, start, results)) for name in ("a", "b")
    ]
    for process in workers:
        process.start()
    start.set()
    for process in workers:
        process.join(timeout=120)
        assert process.exitcode == 0
    reports = sorted(results.get(timeout=5) for _ in workers)
    final = FileSystemProjectRepository().get_by_path(tmp_path)
    assert final is not None
    prompts = sorted(f.prompt for f in final.features.values())
    assert len(prompts) == 2 * CYCLES  # final counter == total increments
    assert prompts == sorted(f"{w} increment {i}" for w in ("a", "b") for i in range(CYCLES))
    assert final.revision == 2 + 2 * CYCLES
    assert [r[0] for r in reports] == ["a", "b"]
