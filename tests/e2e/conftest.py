"""Fixtures for the end-to-end tests against real backends (Jaeger, Prometheus, Collector).

Every test collected under tests/e2e is marked ``e2e`` automatically. The backends must be
installed first (``scripts/install-backends.sh``); if they are not, the fixture errors with
instructions -- it never skips.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backends import Backends

_E2E_DIR = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    # Harmless if pyproject.toml registers the marker too.
    config.addinivalue_line("markers", "e2e: end-to-end test against real observability backends")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.parent == _E2E_DIR or _E2E_DIR in item.path.parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backends]:
    """Jaeger + Prometheus + Collector on free loopback ports, shared by the whole session."""
    b = Backends(tmp_path_factory.mktemp("backends"))
    b.start()
    print(f"\n[backends] ready in {b.startup_seconds:.2f}s (workdir {b.workdir})")
    try:
        yield b
    finally:
        b.stop()
