"""Every example runs, and does what its docstring says, in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EnvFactory = Callable[..., dict[str, str]]
SpanReader = Callable[[Path], Iterator[dict[str, Any]]]


@pytest.fixture
def example_env(clean_env: EnvFactory) -> EnvFactory:
    """``example_env(**extra)``: a clean environment in which ``examples`` is importable."""
    return lambda **extra: clean_env(PYTHONPATH=str(ROOT), **extra)


@pytest.fixture
def span_names(otlp_json_spans: SpanReader) -> Callable[[Path], set[str]]:
    return lambda traces: {span["name"] for span in otlp_json_spans(traces)}


def _run(args: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout


def test_env_only_app_plain_and_enabled(
    tmp_path: Path, example_env: EnvFactory, span_names: Callable[[Path], set[str]]
) -> None:
    plain = _run([str(ROOT / "examples/app_env_only.py")], example_env(), tmp_path)
    assert "refused as expected: E103" in plain and "is completed" in plain
    local = tmp_path / "telemetry"
    _run(
        [str(ROOT / "examples/app_env_only.py")],
        example_env(CDE_OTEL_ENABLED="true", CDE_OTEL_LOCAL_DIR=str(local)),
        tmp_path,
    )
    assert {"Feature.complete", "Feature.fail", "FileSystemProjectRepository.save"} <= span_names(
        local / "traces.jsonl"
    )


def test_own_providers_example(tmp_path: Path, example_env: EnvFactory) -> None:
    out = _run([str(ROOT / "examples/own_providers.py")], example_env(), tmp_path)
    assert "Project.start_feature" in out and "FileSystemProjectRepository.save" in out


def test_custom_target_example(tmp_path: Path, example_env: EnvFactory, span_names: Callable[[Path], set[str]]) -> None:
    local = tmp_path / "telemetry"
    env = example_env(
        CDE_OTEL_ENABLED="true",
        CDE_OTEL_LOCAL_DIR=str(local),
        CDE_OTEL_TARGETS="examples.review_bot:ReviewBot.review",
    )
    out = _run(["-m", "examples.custom_target"], env, ROOT)
    assert out.startswith("approved ")
    assert "ReviewBot.review" in span_names(local / "traces.jsonl")
