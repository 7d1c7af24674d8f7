"""A standalone ``CDEInstrumentor`` writes its operation lines wherever ``setup_logging`` writes.

Without ``CDE_OTEL_ENABLED`` there is no ``configure()``: an application that instruments by hand
and calls ``setup_logging(output_file=...)`` gets the same JSON line per operation in that file as
the variable gives, whichever of the two it calls first, and none once the setup is undone.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cde_otel.core import Project
from cde_otel.instrumentation import CDEInstrumentor
from cde_otel.logging import reset_logging, setup_logging
from cde_otel.settings import load_settings
from cde_otel.testing import capture_telemetry


@pytest.fixture
def instrument() -> Iterator[Any]:
    telemetry = capture_telemetry()

    def start() -> None:
        CDEInstrumentor().instrument(
            tracer_provider=telemetry.tracer_provider,
            meter_provider=telemetry.meter_provider,
            settings=load_settings({}),
        )

    yield start
    reset_logging()
    CDEInstrumentor().uninstrument()
    telemetry.shutdown()


def _operations(path: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [line for line in lines if line.get("logger") == "cde_otel.operations"]


@pytest.mark.parametrize("setup_first", [True, False])
def test_operation_lines_reach_the_setup_logging_file(tmp_path: Path, instrument: Any, setup_first: bool) -> None:
    log_file = tmp_path / "app.log"
    if setup_first:
        setup_logging("info", output_file=log_file, stream=io.StringIO())
        instrument()
    else:
        instrument()
        setup_logging("info", output_file=log_file, stream=io.StringIO())
    Project(name="lines", path=str(tmp_path / "project")).activate()
    reset_logging()  # writes what is pending

    events = [line["event"] for line in _operations(log_file)]
    assert "Project.activate succeeded" in events
    [activate] = [line for line in _operations(log_file) if line["event"] == "Project.activate succeeded"]
    assert activate["outcome"] == "ok" and len(activate["trace_id"]) == 32


def test_no_lines_once_the_setup_is_undone_and_the_level_is_the_setups(tmp_path: Path, instrument: Any) -> None:
    instrument()
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    setup_logging("warning", output_file=first, stream=io.StringIO())
    Project(name="quiet", path=str(tmp_path / "p1")).activate()  # ok operation: below WARNING
    setup_logging("info", output_file=second, stream=io.StringIO())  # replaces the first setup
    loud = Project(name="loud", path=str(tmp_path / "p2"))
    loud.activate()
    reset_logging()
    Project(name="after", path=str(tmp_path / "p3")).activate()  # no setup: no line anywhere

    assert _operations(first) == []
    events = [line["event"] for line in _operations(second)]
    assert "Project.activate succeeded" in events
    assert {line["project_id"] for line in _operations(second)} == {loud.id}  # not the first's, not the third's
