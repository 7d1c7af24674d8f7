"""The wrapper put around every target: one span, one histogram record, the operation events.

It never raises into the application and never changes a return value or an
exception: telemetry failures are swallowed, logged and counted (``_safe_begin``/``_safe_end``;
see :mod:`cde_otel._swallowed`).

**The span and the histogram measure the same interval**: one pair of ``time.time_ns()``
readings, ``t0`` right before the span starts and ``t1`` first thing after the call returns or
raises. The span gets them as its start and end times, ``cde.operation.duration`` records
``t1 - t0``. The interval covers starting the span, attaching its context and the call itself;
neither covers the attribute work after the call nor the operation line
(:class:`~cde_otel.logging.OperationEvents`), which are written after ``t1``.

**No re-entry**: while the wrapper records (``begin``/``end``) the re-entry guard
(:mod:`cde_otel._reentry`) is on, and an instrumented method called meanwhile — by a log
renderer, a bridge, an exporter — runs bare. So ``CDE_OTEL_TARGETS=json:JSONEncoder.encode``
records the application's own ``json.dumps`` calls and never ours.

Exception events and status descriptions are scrubbed (:func:`cde_otel.redaction.scrub_exception`);
a requested next phase that is not a phase is recorded as ``invalid``, never as given.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

from opentelemetry import baggage, context, trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.metrics import Counter, Histogram
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from cde_otel._correlation import clean_correlation_id
from cde_otel._reentry import GUARD
from cde_otel._swallowed import swallowed
from cde_otel.instrumentation._base import UserHooks
from cde_otel.instrumentation._extractors import is_feature, is_project, object_id
from cde_otel.instrumentation._targets import Role, Target
from cde_otel.logging import OperationEvents
from cde_otel.redaction import scrub_exception
from cde_otel.semconv import (
    ATTR_CODE_FUNCTION_NAME,
    ATTR_CORRELATION_ID,
    ATTR_ERROR_CODE,
    ATTR_ERROR_RECOVERABLE,
    ATTR_ERROR_TYPE,
    ATTR_FEATURE_ID,
    ATTR_FEATURE_PHASE,
    ATTR_OPERATION,
    ATTR_OUTCOME,
    ATTR_PROJECT_ID,
    CORRELATION_KEY,
    LOG_FIELDS,
    OUTCOME_ERROR,
    OUTCOME_OK,
)

_log = logging.getLogger("cde_otel.instrumentation")


class _Operation:
    __slots__ = ("attrs", "cpu_ns", "instance", "span", "start_ns", "token")

    def __init__(
        self, span: trace.Span, token: object, attrs: dict[str, Any], start_ns: int, cpu_ns: int | None
    ) -> None:
        self.instance: Any = None  # kept only for a user's response_hook
        self.span = span
        self.token = token
        self.attrs = attrs
        self.start_ns = start_ns  # t0: the span's start time
        self.cpu_ns = cpu_ns  # the thread's CPU clock at t0, read only for targets that were slow before


def failure_attributes(error: BaseException) -> dict[str, str]:
    """``error.type`` (the exception's class name) and, for a coded error, ``cde.error.code`` (``E104``)."""
    attributes = {ATTR_ERROR_TYPE: type(error).__name__}
    code = getattr(error, "code", None)
    if isinstance(code, str):
        attributes[ATTR_ERROR_CODE] = code
    return attributes


def record_exception_scrubbed(span: trace.Span, error: BaseException) -> str:
    """``span.record_exception(error)`` with secrets masked in the message and stack trace; returns the message."""
    _, message, stack = scrub_exception(error)
    span.add_event(
        "exception",
        {"exception.type": type(error).__name__, "exception.message": message, "exception.stacktrace": stack},
    )
    return message


class OperationTelemetry:
    """Shared instruments and policies for all wrapped operations of one instrumentor."""

    def __init__(
        self,
        tracer: Tracer,
        duration: Histogram,
        errors: Counter,
        *,
        events: OperationEvents | None = None,
        capture_content: bool = False,
        capture_max_length: int = 256,
        hooks: UserHooks | None = None,
    ) -> None:
        self.tracer = tracer
        self.hooks = hooks
        self.duration = duration
        self.errors = errors
        self.events = events
        # Targets that ended slow at least once: only for them begin() reads the CPU clock (a syscall).
        self.slow_targets: set[str] = set()
        self.capture_content = capture_content
        self.capture_max_length = capture_max_length
        self.active = True
        # project id -> the feature last changed in it, so the save that persists the change is
        # tagged with the feature too (one tag then finds a feature's whole workflow).
        self.touched: dict[str, str] = {}

    # -- attributes -------------------------------------------------------------------
    def _begin_attrs(
        self, target: Target, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        attrs: dict[str, Any] = {ATTR_OPERATION: target.qualname, ATTR_CODE_FUNCTION_NAME: target.spec}
        for extract in target.begin_extractors:  # the role's, then the method's (declared with the target)
            extract(self, attrs, instance, args, kwargs)
        project_id = attrs.get(ATTR_PROJECT_ID)
        if project_id is None:
            attrs.pop(ATTR_PROJECT_ID, None)
        elif ATTR_FEATURE_ID not in attrs and target.role is Role.STORE:
            touched = self.touched.get(project_id)
            if touched is not None:
                attrs[ATTR_FEATURE_ID] = touched
        return attrs

    # -- span lifecycle ---------------------------------------------------------------
    def begin(
        self, target: Target, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], *, cpu: bool = False
    ) -> _Operation:
        attrs = self._begin_attrs(target, instance, args, kwargs)
        parent = context.get_current()
        cid = clean_correlation_id(baggage.get_baggage(CORRELATION_KEY, parent))  # baggage may be a client's
        if isinstance(cid, str):  # known before the span starts: one of its starting attributes
            attrs[ATTR_CORRELATION_ID] = cid
        start_ns = time.time_ns()  # t0
        span = self.tracer.start_span(target.qualname, parent, SpanKind.INTERNAL, attrs, start_time=start_ns)
        ctx = trace.set_span_in_context(span, parent)
        if not isinstance(cid, str):
            # A top-level operation without a correlation id gets its trace id as one:
            # free, unique, and a log line carrying it leads straight to the trace.
            cid = trace.format_trace_id(span.get_span_context().trace_id)
            ctx = baggage.set_baggage(CORRELATION_KEY, cid, ctx)
            span.set_attribute(ATTR_CORRELATION_ID, cid)
            attrs[ATTR_CORRELATION_ID] = cid
        token = context.attach(ctx)
        cpu_ns = None
        events = self.events
        if events is not None:
            if events.start_on:
                events.started(target.qualname, span, start_ns, _log_ids(attrs))
            if cpu and target.spec in self.slow_targets:
                cpu_ns = time.thread_time_ns()
        op = _Operation(span, token, attrs, start_ns, cpu_ns)
        hooks = self.hooks
        if hooks is not None:
            op.instance = instance
            hooks.on_request(span, instance, args, kwargs)
        return op

    def end(self, target: Target, op: _Operation, result: Any = None, error: BaseException | None = None) -> None:
        end_ns = time.time_ns()  # t1
        span = op.span
        attrs = op.attrs
        metric_attrs: dict[str, Any] = {ATTR_OPERATION: target.qualname}
        error_code: str | None = None
        try:
            if error is None:
                metric_attrs[ATTR_OUTCOME] = OUTCOME_OK
                self._note_result(target, attrs, span, result)
                if self.hooks is not None:
                    self.hooks.on_response(span, op.instance, result)
            else:
                # The conventions' error.type is the exception class; our E-code rides beside it.
                failure = failure_attributes(error)
                error_code = failure.get(ATTR_ERROR_CODE, failure[ATTR_ERROR_TYPE])
                metric_attrs[ATTR_OUTCOME] = OUTCOME_ERROR
                metric_attrs.update(failure)
                span.set_attributes(failure)
                recoverable = getattr(error, "recoverable", None)
                if isinstance(recoverable, bool):
                    span.set_attribute(ATTR_ERROR_RECOVERABLE, recoverable)
                message = record_exception_scrubbed(span, error)
                span.set_status(Status(StatusCode.ERROR, f"{error_code}: {message}"[:256]))
                self.errors.add(1, {**failure, ATTR_OPERATION: target.qualname})
            # Recorded while the span is still current, so the exemplar carries its trace and span ids.
            self.duration.record(max(end_ns - op.start_ns, 0) / 1e9, metric_attrs)
            span.end(end_time=end_ns)
            events = self.events
            if events is not None:
                slow = end_ns - op.start_ns > events.slow_after_ns
                if slow or error_code is not None or events.ok_lines:  # else, by default, its record is its span
                    self._report(target, op, end_ns, error_code, slow)
        finally:
            if span.is_recording():  # something above failed before the span ended
                span.end(end_time=end_ns)
            context.detach(op.token)  # type: ignore[arg-type]

    def _report(self, target: Target, op: _Operation, end_ns: int, error_code: str | None, slow: bool) -> None:
        """The operation's line and, when it failed or was slow, its log record (inside its span's context)."""
        events = self.events
        assert events is not None
        cpu_ms = None
        if slow:
            self.slow_targets.add(target.spec)
            if op.cpu_ns is not None:
                cpu_ms = (time.thread_time_ns() - op.cpu_ns) / 1e6
        events.ended(
            target.qualname, op.span, op.start_ns, end_ns, _log_ids(op.attrs),
            error_code=error_code, slow=slow, cpu_ms=cpu_ms,
        )  # fmt: skip

    def _note_result(self, target: Target, attrs: dict[str, Any], span: trace.Span, result: Any) -> None:
        role = target.role
        if role is Role.FEATURE:
            feature_id = attrs.get(ATTR_FEATURE_ID)
            project_id = attrs.get(ATTR_PROJECT_ID)
            if feature_id and project_id:
                self.touched[project_id] = feature_id
            return
        if result is None:
            if target.writes:
                project_id = attrs.get(ATTR_PROJECT_ID)
                if project_id is not None and self.touched.get(project_id) == attrs.get(ATTR_FEATURE_ID):
                    self.touched.pop(project_id, None)
            return
        if is_feature(result):
            feature_id = object_id(result)
            if feature_id is not None:
                span.set_attribute(ATTR_FEATURE_ID, feature_id)
                span.set_attribute(ATTR_FEATURE_PHASE, str(result.current_phase))
                attrs[ATTR_FEATURE_ID] = feature_id
                self.touched[str(result.project_id)] = feature_id
        elif is_project(result) and ATTR_PROJECT_ID not in attrs:
            project_id = object_id(result)
            if project_id is not None:
                span.set_attribute(ATTR_PROJECT_ID, project_id)
                attrs[ATTR_PROJECT_ID] = project_id

    # -- wrappers ---------------------------------------------------------------------
    def _safe_begin(
        self, target: Target, instance: Any, args: Any, kwargs: Any, *, cpu: bool = False
    ) -> _Operation | None:
        if not self.active or not is_instrumentation_enabled():
            return None
        GUARD.active = True
        try:
            return self.begin(target, instance, args, kwargs, cpu=cpu)
        except Exception:
            swallowed("wrapper.begin", _log, "cde-otel: starting telemetry for %s failed", target.spec)
            return None
        finally:
            GUARD.active = False

    def _safe_end(self, target: Target, op: _Operation, result: Any = None, error: BaseException | None = None) -> None:
        GUARD.active = True
        try:
            self.end(target, op, result, error)
        except Exception:
            swallowed("wrapper.end", _log, "cde-otel: ending telemetry for %s failed", target.spec)
        finally:
            GUARD.active = False

    def wrapper_for(self, target: Target, func: Callable[..., Any]) -> Callable[..., Any]:
        """A wrapt-style wrapper ``(wrapped, instance, args, kwargs)`` for ``target``.

        Telemetry failures are swallowed, logged and counted (never raised); the call's own result or
        exception passes through untouched. Called while cde-otel records (the re-entry guard is
        on), the method runs bare.
        """
        begin, end = self._safe_begin, self._safe_end

        if inspect.iscoroutinefunction(func):

            async def async_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
                if GUARD.active:
                    return await wrapped(*args, **kwargs)
                op = begin(target, instance, args, kwargs)
                if op is None:
                    return await wrapped(*args, **kwargs)
                try:
                    result = await wrapped(*args, **kwargs)
                except BaseException as exc:
                    end(target, op, error=exc)
                    raise
                end(target, op, result)
                return result

            return async_wrapper

        def sync_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            if GUARD.active:
                return wrapped(*args, **kwargs)
            op = begin(target, instance, args, kwargs, cpu=True)
            if op is None:
                return wrapped(*args, **kwargs)
            try:
                result = wrapped(*args, **kwargs)
            except BaseException as exc:
                end(target, op, error=exc)
                raise
            end(target, op, result)
            return result

        return sync_wrapper


def _log_ids(attrs: dict[str, Any]) -> dict[str, Any]:
    return {key: attrs[attr] for attr, key in LOG_FIELDS.items() if attr in attrs}
