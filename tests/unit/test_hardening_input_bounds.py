"""Size and shape at the core's boundary: over-long ids, paths, phases and names are refused with a
coded error before anything else looks at them, their errors quote at most ~100 characters, and
nothing is written. (How fast: bench/bench_input_bounds.py; no clock here.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cde_otel.core import FileSystemProjectRepository, Project, ProjectRoots
from cde_otel.errors import CDEError, ErrorFormatter, ValidationError, error_for

TEN_MB = 10 * 1024 * 1024
HUGE = "x" * TEN_MB
#: Everything an error carries, rendered as the JSON an MCP client gets: a few KB whatever the input.
MAX_ANSWER_BYTES = 8 * 1024


@pytest.fixture
def project(tmp_path: Path) -> Project:
    repo = FileSystemProjectRepository()
    project = repo.get_or_create(tmp_path)
    project.activate()
    project.start_feature("Add login")
    repo.save(project)
    return project


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _refusal(call: Callable[[], Any]) -> CDEError:
    with pytest.raises(CDEError) as caught:
        call()
    return caught.value


def _assert_small(error: CDEError) -> None:
    answer = ErrorFormatter.format_json(error)
    assert len(answer.encode()) < MAX_ANSWER_BYTES, f"an answer of {len(answer)} characters"
    assert len(str(error)) < 400
    assert len(ErrorFormatter.format(error, ascii=True)) < MAX_ANSWER_BYTES
    assert len(json.dumps(error.to_dict()["context"])) < 1024


CALLS: dict[str, tuple[Callable[[Project, Path], Any], str]] = {
    "feature id": (lambda p, _: p.get_feature(HUGE), "E005"),
    "next phase": (lambda p, _: next(iter(p.features.values())).advance_phase(HUGE), "E005"),
    "project status": (lambda p, _: p.transition_status(HUGE), "E005"),
    "workflow type": (lambda p, _: p.start_feature("fine", workflow_type=HUGE), "E005"),
    "feature name": (lambda p, _: p.start_feature("fine", name=HUGE), "E302"),
    "prompt": (lambda p, _: p.start_feature(HUGE), "E301"),
    "project path": (lambda _, root: FileSystemProjectRepository().get_or_create(str(root) + "/" + HUGE), "E005"),
    "project path read": (lambda _, root: FileSystemProjectRepository().get_by_path(HUGE), "E005"),
    "backup name": (lambda _, root: FileSystemProjectRepository().restore_backup(root, HUGE), "E005"),
    "confined path": (lambda _, root: ProjectRoots([root]).confine(HUGE), "E005"),
    "NUL in path": (lambda _, root: FileSystemProjectRepository().get_or_create(f"{root}/a\x00b"), "E006"),
    "line break in id": (lambda p, _: p.get_feature("abc\ndef"), "E006"),
}


@pytest.mark.parametrize("case", sorted(CALLS))
def test_over_long_input_is_refused_with_a_small_coded_error_and_nothing_written(
    project: Project, tmp_path: Path, case: str
) -> None:
    call, code = CALLS[case]
    before = _files(tmp_path)

    error = _refusal(lambda: call(project, tmp_path))

    assert error.code == code
    _assert_small(error)
    assert _files(tmp_path) == before


def test_an_unknown_phase_or_feature_quotes_only_the_start_of_it(project: Project) -> None:
    phase = "designing" * 6  # under the length limit, still not a phase
    feature = next(iter(project.features.values()))

    unknown_phase = _refusal(lambda: feature.advance_phase(phase))
    unknown_feature = _refusal(lambda: project.get_feature("f" * 64))

    assert unknown_phase.code == "E303" and unknown_feature.code == "E104"
    assert len(unknown_phase.message) < 200 and len(unknown_feature.message) < 250


def test_an_error_built_with_huge_text_is_bounded_whoever_built_it() -> None:
    error = ValidationError("bad " + HUGE, "E305", {"field": HUGE, "values": [HUGE] * 10_000, HUGE: 1})

    assert len(ErrorFormatter.format_json(error)) < 64 * 1024  # a backstop: ~1 KB per text, 20 items per list
    assert len(error.message) <= 1024 and "more chars" in error.message
    assert len(error.context["values"]) == 20


def test_a_chained_cause_with_huge_text_is_bounded() -> None:
    error = error_for("E201", path="/p", operation="save", reason="r", errno="EIO")
    try:
        raise error from OSError(HUGE)
    except CDEError as raised:
        causes = raised.to_dict()["causes"]
    assert len(causes[0]["message"]) <= 1024
