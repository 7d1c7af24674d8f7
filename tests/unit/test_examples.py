"""Every example runs, and does what its docstring says, in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from telemetry_helpers import clean_env, otlp_json_spans

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    return clean_env(PYTHONPATH=str(ROOT), **extra)


def _run(args: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout


def _span_names(traces: Path) -> set[str]:
    return {span["name"] for span in otlp_json_spans(traces)}


def test_env_only_app_plain_and_enabled(tmp_path: Path) -> None:
    plain = _run([str(ROOT / "examples/app_env_only.py")], _env(), tmp_path)
    assert "refused as expected: E103" in plain and "is completed" in plain
    local = tmp_path / "telemetry"
    _run(
        [str(ROOT / "examples/app_env_only.py")], _env(CDE_OTEL_ENABLED="true", CDE_OTEL_LOCAL_DIR=str(local)), tmp_path
    )
    assert {"Feature.complete", "Feature.fail", "FileSystemProjectRepository.save"} <= _span_names(
        local / "traces.jsonl"
    )


def test_own_providers_example(tmp_path: Path) -> None:
    out = _run([str(ROOT / "examples/own_providers.py")], _env(), tmp_path)
    assert "Project.start_feature" in out and "FileSystemProjectRepository.save" in out


def test_custom_target_example(tmp_path: Path) -> None:
    local = tmp_path / "telemetry"
    env = _env(
        CDE_OTEL_ENABLED="true",
        CDE_OTEL_LOCAL_DIR=str(local),
        CDE_OTEL_TARGETS="examples.review_bot:ReviewBot.review",
    )
    out = _run(["-m", "examples.custom_target"], env, ROOT)
    assert out.startswith("approved ")
    assert "ReviewBot.review" in _span_names(local / "traces.jsonl")
