"""Suite-wide rules: in CI (or with CDE_OTEL_FAIL_ON_SKIP=1) a skipped test fails the run."""

from __future__ import annotations

import os

import pytest

from cde_otel import breadcrumbs

_FAIL_ON_SKIP = os.environ.get("CI", "").lower() == "true" or os.environ.get("CDE_OTEL_FAIL_ON_SKIP") == "1"
_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _FAIL_ON_SKIP and _skipped:
        session.config.get_terminal_writer().line(
            f"FAILED: {len(_skipped)} test(s) skipped, and skips are failures here: {_skipped}", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _fresh_breadcrumbs() -> None:
    breadcrumbs.clear()
