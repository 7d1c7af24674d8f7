"""CDEInstrumentor against the SDK's in-memory exporters and readers."""

from __future__ import annotations

import asyncio
import itertools
import math
import sys
import textwrap
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from cde_otel._swallowed import swallowed_counts
from cde_otel.core import FileSystemProjectRepository, Project
from cde_otel.errors import FeatureError, ValidationError
from cde_otel.instrumentation import CDEInstrumentor
from cde_otel.semconv import (
    ATTR_CODE_FUNCTION_NAME,
    ATTR_CORRELATION_ID,
    ATTR_ERROR_CODE,
    ATTR_ERROR_RECOVERABLE,
    ATTR_ERROR_TYPE,
    ATTR_FEATURE_ID,
    ATTR_FEATURE_NEXT_PHASE,
    ATTR_FEATURE_PHASE,
    ATTR_INSTRUMENTATION_SITE,
    ATTR_OPERATION,
    ATTR_OUTCOME,
    ATTR_PROJECT_ID,
    ATTR_PROMPT,
    ATTR_PROMPT_LENGTH,
    CLASSIC_BOUNDARIES_S,
    INVALID_PHASE,
    METRIC_ERRORS,
    METRIC_INSTRUMENTATION_FAILURES,
    METRIC_OPERATION_DURATION,
)
from cde_otel.settings import load_settings
from cde_otel.telemetry import correlation
from cde_otel.telemetry._thread_context import ThreadContextInstrumentor
from cde_otel.testing import CapturedTelemetry, capture_telemetry


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(name="demo", path=str(tmp_path))


def test_span_names_attributes_and_deterministic_ids(otel: CapturedTelemetry, project: Project) -> None:
    project.activate()
    feature = project.start_feature("Add login with OAuth")
    feature.advance_phase("decompose", {"tasks": 3})

    activate, transition = otel.spans("Project.activate")[0], otel.spans("Project.transition_status")[0]
    start = otel.spans("Project.start_feature")[0]
    advance = otel.spans("Feature.advance_phase")[0]
    # Sequential ids: activate is trace 1 / span 1, its nested transition_status span 2.
    assert activate.context.trace_id == 1 and activate.context.span_id == 1
    assert transition.parent is not None and transition.parent.span_id == activate.context.span_id
    assert transition.context.trace_id == activate.context.trace_id
    assert activate.attributes[ATTR_OPERATION] == "Project.activate"
    assert activate.attributes[ATTR_CODE_FUNCTION_NAME] == "cde_otel.core.model:Project.activate"
    assert activate.attributes[ATTR_PROJECT_ID] == project.id
    # A top-level operation's fresh correlation id is its trace id; children share it.
    assert activate.attributes[ATTR_CORRELATION_ID] == trace.format_trace_id(1)
    assert transition.attributes[ATTR_CORRELATION_ID] == trace.format_trace_id(1)
    assert start.attributes[ATTR_FEATURE_ID] == feature.id
    assert start.attributes[ATTR_FEATURE_PHASE] == "define"
    assert start.attributes[ATTR_PROMPT_LENGTH] == len("Add login with OAuth")
    assert advance.attributes[ATTR_FEATURE_ID] == feature.id
    assert advance.attributes[ATTR_FEATURE_PHASE] == "define"
    assert advance.attributes[ATTR_FEATURE_NEXT_PHASE] == "decompose"
    assert ATTR_PROMPT_LENGTH not in transition.attributes


def test_no_prompt_text_in_attributes_by_default(otel: CapturedTelemetry, project: Project) -> None:
    project.activate()
    project.start_feature("my secret token is hunter2")
    for span in otel.spans():
        for value in span.attributes.values():
            assert "hunter2" not in str(value)


def test_prompt_capture_is_opt_in_and_truncated(project: Project) -> None:
    telemetry = capture_telemetry()
    CDEInstrumentor().instrument(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        settings=load_settings({"CDE_OTEL_CAPTURE_CONTENT": "true", "CDE_OTEL_CAPTURE_MAX_LENGTH": "5"}),
        log_operations=False,
    )
    try:
        project.activate()
        project.start_feature("abcdefghij")
    finally:
        CDEInstrumentor().uninstrument()
    assert telemetry.spans("Project.start_feature")[0].attributes[ATTR_PROMPT] == "abcde"


def test_save_is_nested_and_tagged_with_the_feature_it_persists(otel: CapturedTelemetry, tmp_path: Path) -> None:
    repo = FileSystemProjectRepository()
    project = repo.get_or_create(tmp_path)
    project.activate()
    feature = project.start_feature("Add search")
    repo.save(project)
    saves = otel.spans("FileSystemProjectRepository.save")
    assert saves[-1].attributes[ATTR_FEATURE_ID] == feature.id
    assert saves[-1].attributes[ATTR_PROJECT_ID] == project.id
    get_or_create = otel.spans("FileSystemProjectRepository.get_or_create")[0]
    nested = [s for s in saves if s.parent and s.parent.span_id == get_or_create.context.span_id]
    assert nested, "the first save runs inside get_or_create and must be its child"
    assert get_or_create.attributes[ATTR_PROJECT_ID] == project.id


def test_a_recovery_from_backup_is_a_span_inside_the_load_that_found_the_damage(
    otel: CapturedTelemetry, tmp_path: Path
) -> None:
    repo = FileSystemProjectRepository()
    project = repo.get_or_create(tmp_path)
    project.activate()
    project.start_feature("Add search")
    repo.save(project)
    (tmp_path / ".cde" / "state.json").write_text("{ not json")
    recovered = FileSystemProjectRepository().get_or_create(tmp_path)
    assert len(recovered.features) == 1
    [recovery] = otel.spans("StateRecovery.recover_locked")
    assert recovery.attributes[ATTR_PROJECT_ID] == project.id
    loads = {s.context.span_id: s.name for s in otel.spans() if s.name.startswith("FileSystemProjectRepository.get")}
    assert recovery.parent is not None and recovery.parent.span_id in loads


def test_user_text_in_errors_and_phases_is_never_recorded_verbatim(otel: CapturedTelemetry, project: Project) -> None:
    project.activate()
    feature = project.start_feature("Add login")
    with pytest.raises(ValidationError):
        feature.advance_phase("decompose password=hunter2")  # E303 quotes the text it refuses
    span = otel.spans("Feature.advance_phase")[0]
    assert span.attributes[ATTR_FEATURE_NEXT_PHASE] == INVALID_PHASE
    assert span.status.description == "E303: [E303] unknown phase 'decompose password=[REDACTED]"
    (event,) = span.events
    assert event.name == "exception" and event.attributes is not None
    assert event.attributes["exception.type"] == "ValidationError"
    assert "password=[REDACTED]" in str(event.attributes["exception.message"])
    assert "hunter2" not in str(event.attributes["exception.stacktrace"])
    assert "Traceback (most recent call last)" in str(event.attributes["exception.stacktrace"])


def test_coded_failure_has_class_error_type_and_cde_error_code(otel: CapturedTelemetry, project: Project) -> None:
    """error.type is the conventions' value (the class); our E-code is cde.error.code, on all three signals."""
    with pytest.raises(FeatureError) as raised:
        project.start_feature("too early")
    assert raised.value.code == "E101"
    span = otel.spans("Project.start_feature")[0]
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes[ATTR_ERROR_TYPE], span.attributes[ATTR_ERROR_CODE]) == ("FeatureError", "E101")
    assert str(span.status.description).startswith("E101: ")
    assert span.attributes[ATTR_ERROR_RECOVERABLE] is True
    assert [e.name for e in span.events] == ["exception"]
    [failed] = [p for p in otel.points(METRIC_OPERATION_DURATION) if p.attributes[ATTR_OUTCOME] == "error"]
    assert dict(failed.attributes) == {
        ATTR_OPERATION: "Project.start_feature",
        ATTR_OUTCOME: "error",
        ATTR_ERROR_TYPE: "FeatureError",
        ATTR_ERROR_CODE: "E101",
    }
    errors = otel.points(METRIC_ERRORS)
    assert [(dict(p.attributes), p.value) for p in errors] == [
        ({ATTR_ERROR_TYPE: "FeatureError", ATTR_ERROR_CODE: "E101", ATTR_OPERATION: "Project.start_feature"}, 1)
    ]


def test_uncoded_failure_has_only_error_type(
    otel: CapturedTelemetry, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = FileSystemProjectRepository()

    def broken(project: Project) -> None:
        raise KeyError("gone")

    monkeypatch.setattr(repo, "ensure_writable", broken)
    with pytest.raises(KeyError):
        repo.save(project)
    [span] = otel.spans("FileSystemProjectRepository.save")
    assert span.attributes[ATTR_ERROR_TYPE] == "KeyError" and ATTR_ERROR_CODE not in span.attributes
    assert str(span.status.description).startswith("KeyError: ")
    [failed] = otel.points(METRIC_OPERATION_DURATION)
    assert failed.attributes[ATTR_ERROR_TYPE] == "KeyError" and ATTR_ERROR_CODE not in failed.attributes
    assert [dict(p.attributes) for p in otel.points(METRIC_ERRORS)] == [
        {ATTR_ERROR_TYPE: "KeyError", ATTR_OPERATION: "FileSystemProjectRepository.save"}
    ]


SENTINEL_ERROR = LookupError("the very same exception object")
SENTINEL_RESULT = object()


class Plain:
    def give(self) -> object:
        return SENTINEL_RESULT

    def throw(self) -> None:
        raise SENTINEL_ERROR


def test_wrapper_preserves_return_values_and_exceptions(otel: CapturedTelemetry, tmp_path: Path) -> None:
    repo = FileSystemProjectRepository()
    assert repo.get_by_path(tmp_path) is None
    project = repo.get_or_create(tmp_path)
    assert repo.get_by_path(tmp_path) == project
    CDEInstrumentor().uninstrument()
    telemetry = capture_telemetry()
    CDEInstrumentor().instrument(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        targets=[f"{__name__}:Plain.give", f"{__name__}:Plain.throw"],
        log_operations=False,
    )
    assert Plain().give() is SENTINEL_RESULT
    with pytest.raises(LookupError) as raised:
        Plain().throw()
    assert raised.value is SENTINEL_ERROR
    assert [s.name for s in telemetry.spans()] == ["Plain.give", "Plain.throw"]


def test_instrumentation_failure_never_reaches_the_app(project: Project) -> None:
    class BrokenTracer:
        def start_span(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("exporter exploded")

    telemetry = capture_telemetry()
    CDEInstrumentor().instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider, log_operations=False
    )
    try:
        ops = CDEInstrumentor().operation_telemetry
        assert ops is not None
        ops.tracer = BrokenTracer()  # type: ignore[assignment]
        before = swallowed_counts().get("wrapper.begin", 0)
        project.activate()
        feature = project.start_feature("still works")
        assert feature.current_phase == "define"
        with pytest.raises(FeatureError):
            feature.complete()
        # Swallowed, not hidden: each failure counted, and exported as a counter by site.
        counted = swallowed_counts()["wrapper.begin"]
        assert counted >= before + 3  # the three calls above, and what they call
        points = telemetry.points(METRIC_INSTRUMENTATION_FAILURES)
        assert {p.attributes[ATTR_INSTRUMENTATION_SITE]: p.value for p in points}["wrapper.begin"] == counted
    finally:
        CDEInstrumentor().uninstrument()
    assert telemetry.spans() == []


def test_uninstrument_stops_all_telemetry(otel: CapturedTelemetry, project: Project) -> None:
    project.activate()
    assert otel.spans()
    CDEInstrumentor().uninstrument()
    otel.span_exporter.clear()
    project.archive()
    project.activate()
    assert otel.spans() == []
    assert not hasattr(Project.activate, "__wrapped__")


def test_instrumenting_twice_is_a_no_op(otel: CapturedTelemetry, project: Project) -> None:
    CDEInstrumentor().instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    project.activate()
    assert len(otel.spans("Project.activate")) == 1


def test_duration_histogram_records_seconds_with_outcome(otel: CapturedTelemetry, project: Project) -> None:
    project.activate()
    with pytest.raises(FeatureError):
        project.start_feature("x").complete()
    points = {
        (p.attributes[ATTR_OPERATION], p.attributes[ATTR_OUTCOME]): p for p in otel.points(METRIC_OPERATION_DURATION)
    }
    ok = points[("Project.activate", "ok")]
    assert ok.count == 1 and 0 < ok.sum < 1.0  # seconds, not milliseconds
    failed = points[("Feature.complete", "error")]
    assert (failed.attributes[ATTR_ERROR_TYPE], failed.attributes[ATTR_ERROR_CODE]) == ("FeatureError", "E105")
    assert type(ok).__name__ == "ExponentialHistogramDataPoint"


def test_advisory_boundaries_serve_a_users_own_meter_provider(project: Project) -> None:
    telemetry = capture_telemetry(views=False)  # a plain MeterProvider, as a user would pass
    CDEInstrumentor().instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider, log_operations=False
    )
    try:
        project.activate()
    finally:
        CDEInstrumentor().uninstrument()
    point = telemetry.points(METRIC_OPERATION_DURATION)[0]
    assert tuple(point.explicit_bounds) == CLASSIC_BOUNDARIES_S
    ratios = [b / a for a, b in itertools.pairwise(CLASSIC_BOUNDARIES_S)]
    assert max(ratios) < 1.2  # half a bucket is < 10 % relative error
    assert CLASSIC_BOUNDARIES_S[0] <= 1e-5 and CLASSIC_BOUNDARIES_S[-1] >= 60


def test_correlation_follows_threads_and_asyncio_tasks(otel: CapturedTelemetry, project: Project) -> None:
    ThreadContextInstrumentor().instrument()
    try:
        project.activate()
        with correlation("req-42"):
            thread = threading.Thread(target=lambda: project.start_feature("from a thread"))
            thread.start()
            thread.join()
            with ThreadPoolExecutor(1) as pool:
                pool.submit(project.start_feature, "from a pool").result()
            timer = threading.Timer(0, lambda: project.start_feature("from a timer"))
            timer.start()
            timer.join()

            async def in_task() -> None:
                await asyncio.gather(asyncio.create_task(_advance(project)))

            asyncio.run(in_task())
    finally:
        ThreadContextInstrumentor().uninstrument()
    tagged = [s for s in otel.spans() if s.attributes.get(ATTR_CORRELATION_ID) == "req-42"]
    assert {s.name for s in tagged} == {"Project.start_feature", "Feature.advance_phase"}
    assert sum(s.name == "Project.start_feature" for s in tagged) == 3  # thread, pool and timer
    # Uninstrumented, a new thread starts in an empty context again.
    with correlation("req-43"):
        thread = threading.Thread(target=lambda: project.start_feature("after"))
        thread.start()
        thread.join()
    assert not [s for s in otel.spans() if s.attributes.get(ATTR_CORRELATION_ID) == "req-43"]


async def _advance(project: Project) -> None:
    feature = next(iter(project.features.values()))
    feature.advance_phase("decompose")


def test_async_user_target_shaped_like_upstream_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "upstream_like"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "repo.py").write_text(
        textwrap.dedent(
            """
            import asyncio

            class AsyncRepository:
                async def get_or_create(self, path):
                    await asyncio.sleep(0)
                    return {"path": path}

                async def delete(self, path):
                    raise KeyError(path)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    telemetry = capture_telemetry()
    CDEInstrumentor().instrument(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        settings=load_settings(
            {
                "CDE_OTEL_TARGETS": ",".join(
                    f"upstream_like.repo:AsyncRepository.{m}" for m in ("get_or_create", "delete")
                )
            }
        ),
        log_operations=False,
    )
    try:
        from upstream_like.repo import AsyncRepository  # type: ignore[import-not-found]

        repo = AsyncRepository()
        assert asyncio.run(repo.get_or_create("/p")) == {"path": "/p"}
        with pytest.raises(KeyError):
            asyncio.run(repo.delete("/p"))
    finally:
        CDEInstrumentor().uninstrument()
        sys.modules.pop("upstream_like.repo", None)
        sys.modules.pop("upstream_like", None)
    [ok] = telemetry.spans("AsyncRepository.get_or_create")
    [failed] = telemetry.spans("AsyncRepository.delete")
    assert ok.end_time is not None and ok.end_time > ok.start_time
    assert failed.status.status_code is StatusCode.ERROR and failed.attributes[ATTR_ERROR_TYPE] == "KeyError"


def test_upstream_package_imported_after_instrument_is_patched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in with the upstream module layout, imported only after instrument()."""
    root = tmp_path / "cde_orchestrator"
    (root / "domain").mkdir(parents=True)
    (root / "adapters" / "state").mkdir(parents=True)
    for init in (root, root / "domain", root / "adapters", root / "adapters" / "state"):
        (init / "__init__.py").write_text("")
    (root / "domain" / "entities.py").write_text(
        textwrap.dedent(
            """
            import uuid

            class Feature:
                def __init__(self, project_id):
                    self.id = uuid.uuid4()
                    self.project_id = project_id
                    self.current_phase = "define"
                    self.status = "defining"

                def advance_phase(self, next_phase, results):
                    self.current_phase = next_phase

            class Project:
                def __init__(self):
                    self.id = uuid.uuid4()
                    self.features = []

                def start_feature(self, prompt):
                    feature = Feature(self.id)
                    self.features.append(feature)
                    return feature
            """
        )
    )
    (root / "adapters" / "filesystem_project_repository.py").write_text(
        textwrap.dedent(
            """
            class FileSystemProjectRepository:
                async def save(self, project):
                    return None
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    telemetry = capture_telemetry()
    CDEInstrumentor().instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider, log_operations=False
    )
    try:
        assert "cde_orchestrator.domain.entities" not in sys.modules
        from cde_orchestrator.adapters.filesystem_project_repository import (  # type: ignore[import-not-found]
            FileSystemProjectRepository as UpstreamRepository,
        )
        from cde_orchestrator.domain.entities import Project as UpstreamProject  # type: ignore[import-not-found]

        project = UpstreamProject()
        feature = project.start_feature("upstream prompt")
        feature.advance_phase("decompose", {})
        asyncio.run(UpstreamRepository().save(project))
    finally:
        CDEInstrumentor().uninstrument()
        for name in [m for m in sys.modules if m.startswith("cde_orchestrator")]:
            sys.modules.pop(name)
    names = [s.name for s in telemetry.spans()]
    assert names == ["Project.start_feature", "Feature.advance_phase", "FileSystemProjectRepository.save"]
    start, advance, save = telemetry.spans()
    assert start.attributes[ATTR_PROJECT_ID] == str(project.id)
    assert advance.attributes[ATTR_FEATURE_ID] == str(feature.id)
    assert save.attributes[ATTR_FEATURE_ID] == str(feature.id)  # the save persists that feature's change
    assert start.attributes[ATTR_CODE_FUNCTION_NAME] == "cde_orchestrator.domain.entities:Project.start_feature"


def test_nesting_is_a_tree(otel: CapturedTelemetry, tmp_path: Path) -> None:
    repo = FileSystemProjectRepository()
    project = repo.get_or_create(tmp_path)
    depths = {span.name: depth for depth, span in walk(otel.spans())}
    assert depths["FileSystemProjectRepository.get_or_create"] == 0
    assert depths["FileSystemProjectRepository.save"] == 1
    assert project.revision == 1
    assert not math.isnan(project.revision)


def walk(spans: list[ReadableSpan]) -> Iterator[tuple[int, ReadableSpan]]:
    """Depth-first (depth, span) over a list of finished spans."""
    children: dict[int | None, list[ReadableSpan]] = {}
    ids = {s.context.span_id for s in spans}
    for s in spans:
        parent = s.parent.span_id if s.parent and s.parent.span_id in ids else None
        children.setdefault(parent, []).append(s)

    def visit(parent: int | None, depth: int) -> Iterator[tuple[int, ReadableSpan]]:
        for s in sorted(children.get(parent, []), key=lambda x: x.start_time or 0):
            yield depth, s
            yield from visit(s.context.span_id, depth + 1)

    yield from visit(None, 0)


def test_request_and_response_hooks_see_the_span_the_call_and_its_result(project: Project) -> None:
    seen: list[tuple[str, object]] = []

    def request_hook(span: trace.Span, instance: object, args: tuple[object, ...], kwargs: dict[str, object]) -> None:
        span.set_attribute("app.arguments", len(args) + len(kwargs))
        seen.append(("request", instance))

    def response_hook(span: trace.Span, instance: object, result: object) -> None:
        span.set_attribute("app.result", type(result).__name__)
        seen.append(("response", result))

    telemetry = capture_telemetry()
    CDEInstrumentor().instrument(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        log_operations=False,
        request_hook=request_hook,
        response_hook=response_hook,
    )
    try:
        project.activate()
        feature = project.start_feature("hooked", "default")
    finally:
        CDEInstrumentor().uninstrument()
    [start] = telemetry.spans("Project.start_feature")
    assert start.attributes is not None
    assert (start.attributes["app.arguments"], start.attributes["app.result"]) == (2, "Feature")
    assert ("request", project) in seen and ("response", feature) in seen


def test_a_raising_hook_is_swallowed_and_counted(project: Project) -> None:
    def broken(span: trace.Span, *call: object) -> None:
        raise ValueError("the user's hook is broken")

    telemetry = capture_telemetry()
    before = {site: swallowed_counts().get(site, 0) for site in ("hook.request", "hook.response")}
    CDEInstrumentor().instrument(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        log_operations=False,
        request_hook=broken,
        response_hook=broken,
    )
    try:
        project.activate()
        feature = project.start_feature("still works")
    finally:
        CDEInstrumentor().uninstrument()
    assert feature.current_phase == "define"
    assert telemetry.spans("Project.start_feature")[0].status.status_code is StatusCode.UNSET
    counts = swallowed_counts()
    assert counts["hook.request"] >= before["hook.request"] + 3  # activate, transition_status, start_feature
    assert counts["hook.response"] >= before["hook.response"] + 3


def test_mcp_request_and_response_hooks(otel: CapturedTelemetry) -> None:
    from cde_otel.instrumentation.mcp import MCPInstrumentor

    calls: list[tuple[object, ...]] = []

    def request_hook(span: trace.Span, method: str, params: dict[str, object] | None) -> None:
        span.set_attribute("app.method", method)
        calls.append((method, params))

    def response_hook(span: trace.Span, result: object) -> None:
        calls.append(("result", result))
        raise RuntimeError("and then it breaks")

    before = swallowed_counts().get("hook.response", 0)
    MCPInstrumentor().instrument(
        tracer_provider=otel.tracer_provider,
        meter_provider=otel.meter_provider,
        request_hook=request_hook,
        response_hook=response_hook,
    )
    try:
        mcp = MCPInstrumentor().mcp_telemetry
        assert mcp is not None
        params = {"name": "cde_submitWork", "arguments": {"phase_id": "define"}}
        call = mcp.begin("tools/call", params, request_id=7, transport="pipe")
        call.result = {"content": [{"type": "text", "text": "{}"}], "isError": False}
        mcp.end(call)
    finally:
        MCPInstrumentor().uninstrument()
    [span] = otel.spans("tools/call cde_submitWork")
    assert span.attributes is not None and span.attributes["app.method"] == "tools/call"
    assert calls == [("tools/call", params), ("result", call.result)]
    assert span.status.status_code is StatusCode.UNSET  # the failed hook changed nothing
    assert swallowed_counts()["hook.response"] == before + 1
