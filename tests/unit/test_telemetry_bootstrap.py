"""The one-variable switch: unchanged programs in fresh interpreters, configured only by the environment."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

from cde_otel.semconv import ATTR_CORRELATION_ID, ATTR_ERROR_CODE, ATTR_ERROR_TYPE, METRIC_OPERATION_DURATION
from cde_otel.telemetry import correlation, propagation_env
from cde_otel.testing import capture_telemetry

EnvFactory = Callable[..., dict[str, str]]
SpanReader = Callable[[Path], Iterator[dict[str, Any]]]

APP = textwrap.dedent(
    """
    import sys
    from cde_otel.core import FileSystemProjectRepository

    repo = FileSystemProjectRepository()
    project = repo.get_or_create(sys.argv[1])
    project.activate()
    feature = project.start_feature("An unchanged program")
    feature.advance_phase("decompose", {"n": 1})
    repo.save(project)
    try:
        feature.advance_phase("review")  # E102: phases go one at a time
    except Exception as error:
        print("refused:", error.code)
    print("otel imported:", any(m.startswith("opentelemetry") for m in sys.modules))
    print("patched:", hasattr(type(project).activate, "__wrapped__"))
    """
)


def _run(tmp_path: Path, env: dict[str, str], code: str = APP) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "app.py"
    script.write_text(code)
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, str(script), str(project)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=tmp_path,
    )


def test_disabled_imports_no_opentelemetry_and_patches_nothing(tmp_path: Path, clean_env: EnvFactory) -> None:
    result = _run(tmp_path, clean_env(CDE_OTEL_LOCAL_DIR=str(tmp_path / "telemetry")))
    assert "otel imported: False" in result.stdout
    assert "patched: False" in result.stdout
    assert not (tmp_path / "telemetry").exists()


def test_one_environment_variable_turns_everything_on(
    tmp_path: Path, clean_env: EnvFactory, otlp_json_spans: SpanReader
) -> None:
    local = tmp_path / "telemetry"
    result = _run(tmp_path, clean_env(CDE_OTEL_ENABLED="true", CDE_OTEL_LOCAL_DIR=str(local)))
    assert "patched: True" in result.stdout
    spans = list(otlp_json_spans(local / "traces.jsonl"))
    names = {s["name"] for s in spans}
    assert {"Project.activate", "Project.start_feature", "Feature.advance_phase"} <= names
    assert "FileSystemProjectRepository.save" in names
    resource = spans[0]["resource"]
    assert resource["service.name"]["stringValue"] == "cde-orchestrator"
    assert resource["service.version"]["stringValue"]
    assert "service.instance.id" in resource and "process.pid" in resource and "host.name" in resource
    assert all(s["attrs"].get(ATTR_CORRELATION_ID) for s in spans)
    # The span is the record of an operation's outcome: status unset (0) when ok, ERROR (2) with its code.
    assert {s["status"].get("code", 0) for s in spans if s["name"] == "Project.activate"} == {0}
    (refused,) = [s for s in spans if s["name"] == "Feature.advance_phase" and s["attrs"].get(ATTR_ERROR_TYPE)]
    assert refused["attrs"][ATTR_ERROR_TYPE] == "FeatureError" and refused["attrs"][ATTR_ERROR_CODE] == "E102"
    assert refused["status"]["code"] == 2
    # metrics and logs were flushed at exit too; a failed operation is also a log record
    assert METRIC_OPERATION_DURATION in (local / "metrics.jsonl").read_text()
    logs = (local / "logs.jsonl").read_text()
    assert "Feature.advance_phase failed" in logs and "E102" in logs
    assert "succeeded" not in logs  # an ok operation's record is its span


def test_a_host_that_never_uses_the_core_does_not_import_it_and_one_that_does_later_is_instrumented(
    tmp_path: Path, clean_env: EnvFactory, otlp_json_spans: SpanReader
) -> None:
    later = textwrap.dedent(
        """
        import sys
        import cde_otel

        cde_otel.configure()
        print("core imported:", "cde_otel.core.repository" in sys.modules)
        from cde_otel.core import FileSystemProjectRepository

        project = FileSystemProjectRepository().get_or_create(sys.argv[1])
        project.activate()
        print("patched:", hasattr(type(project).activate, "__wrapped__"))
        """
    )
    local = tmp_path / "telemetry"
    result = _run(tmp_path, clean_env(CDE_OTEL_LOCAL_DIR=str(local)), later)
    assert "core imported: False" in result.stdout  # nothing the host does not use: no imports, no objects
    assert "patched: True" in result.stdout
    assert "Project.activate" in {s["name"] for s in otlp_json_spans(local / "traces.jsonl")}


def test_standard_otel_variables_are_honoured(
    tmp_path: Path, clean_env: EnvFactory, otlp_json_spans: SpanReader
) -> None:
    local = tmp_path / "telemetry"
    env = clean_env(
        CDE_OTEL_ENABLED="1",
        CDE_OTEL_LOCAL_DIR=str(local),
        OTEL_SERVICE_NAME="my-orchestrator",
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment.name=staging",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_TRACES_SAMPLER="always_on",
    )
    _run(tmp_path, env)
    resource = next(otlp_json_spans(local / "traces.jsonl"))["resource"]
    assert resource["service.name"]["stringValue"] == "my-orchestrator"
    assert resource["deployment.environment.name"]["stringValue"] == "staging"
    assert not (local / "metrics.jsonl").exists() and not (local / "logs.jsonl").exists()


def test_sampler_variable_can_drop_everything(
    tmp_path: Path, clean_env: EnvFactory, otlp_json_spans: SpanReader
) -> None:
    local = tmp_path / "telemetry"
    env = clean_env(CDE_OTEL_ENABLED="true", CDE_OTEL_LOCAL_DIR=str(local), OTEL_TRACES_SAMPLER="always_off")
    _run(tmp_path, env)
    assert not (local / "traces.jsonl").exists() or list(otlp_json_spans(local / "traces.jsonl")) == []


def test_otel_sdk_disabled_wins(tmp_path: Path, clean_env: EnvFactory) -> None:
    local = tmp_path / "telemetry"
    result = _run(tmp_path, clean_env(CDE_OTEL_ENABLED="true", OTEL_SDK_DISABLED="true", CDE_OTEL_LOCAL_DIR=str(local)))
    assert "otel imported: False" in result.stdout
    assert "patched: False" in result.stdout
    assert not local.exists()


def test_correlation_and_trace_continue_in_a_child_process(
    tmp_path: Path, clean_env: EnvFactory, otlp_json_spans: SpanReader
) -> None:
    telemetry = capture_telemetry()
    tracer = telemetry.tracer_provider.get_tracer("test")
    with correlation("corr-parent-7"), tracer.start_as_current_span("parent") as parent:
        child_env = propagation_env()
    local = tmp_path / "telemetry"
    _run(tmp_path, clean_env(CDE_OTEL_ENABLED="true", CDE_OTEL_LOCAL_DIR=str(local), **child_env))
    spans = list(otlp_json_spans(local / "traces.jsonl"))
    parent_trace = trace.format_trace_id(parent.get_span_context().trace_id)
    assert spans and {s["traceId"] for s in spans} == {parent_trace}
    assert {s["attrs"][ATTR_CORRELATION_ID] for s in spans} == {"corr-parent-7"}


def test_opentelemetry_instrument_picks_up_the_entry_point(tmp_path: Path, clean_env: EnvFactory) -> None:
    launcher = Path(sys.executable).with_name("opentelemetry-instrument")
    env = clean_env(OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    script = tmp_path / "app.py"
    script.write_text(APP)
    (tmp_path / "project").mkdir()
    result = subprocess.run(
        [str(launcher), sys.executable, str(script), str(tmp_path / "project")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "patched: True" in result.stdout
    assert '"name": "Project.start_feature"' in result.stdout + result.stderr


@pytest.mark.parametrize("value", ["false", "0", ""])
def test_falsy_values_keep_it_off(tmp_path: Path, value: str, clean_env: EnvFactory) -> None:
    result = _run(tmp_path, clean_env(CDE_OTEL_ENABLED=value))
    assert "otel imported: False" in result.stdout


def test_without_an_endpoint_the_files_go_to_the_users_state_directory_not_the_project(
    tmp_path: Path, clean_env: EnvFactory, otlp_json_spans: SpanReader
) -> None:
    """A server started in the user's project (its working directory) with only the switch set."""
    project = tmp_path / "project"
    project.mkdir()
    (tmp_path / "app.py").write_text(APP)
    state = tmp_path / "state"
    env = clean_env(CDE_OTEL_ENABLED="true", XDG_STATE_HOME=str(state), OTEL_SERVICE_NAME="orchestrator-a")
    subprocess.run(
        [sys.executable, str(tmp_path / "app.py"), str(project)],
        env=env,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert [p.name for p in project.iterdir()] == [".cde"]  # the project's own state, nothing of ours
    local = state / "cde-otel" / "orchestrator-a"
    files = sorted(p.name for p in local.iterdir() if not p.name.startswith("."))  # and the writers' hidden locks
    assert files == ["logs.jsonl", "metrics.jsonl", "traces.jsonl"]
    assert "Project.start_feature" in {s["name"] for s in otlp_json_spans(local / "traces.jsonl")}


def test_the_demo_says_where_its_telemetry_is_kept_and_leaves_the_working_directory_alone(
    tmp_path: Path, clean_env: EnvFactory
) -> None:
    state = tmp_path / "state"
    done = subprocess.run(
        [sys.executable, "-m", "cde_otel", "demo", "--features", "2"],
        env=clean_env(XDG_STATE_HOME=str(state), COLUMNS="400"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    local = state / "cde-otel" / "cde-orchestrator"
    assert f"kept locally → {local} (traces.jsonl, metrics.jsonl, logs.jsonl;" in done.stdout
    assert f"local OTLP-JSON files in {local}" in done.stderr  # the start-up line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]
    assert {"traces.jsonl", "metrics.jsonl", "logs.jsonl", "cde-otel.log"} <= {p.name for p in local.iterdir()}
