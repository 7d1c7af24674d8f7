"""The wrapper put around every target: one span, one histogram record, the operation events.

It never raises into the application and never changes a return value or an
exception: telemetry failures are swallowed, logged and counted (``_safe_begin``/``_safe_end``, ``dont_throw``;
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

import functools
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from opentelemetry import baggage, context, trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.metrics import Counter, Histogram
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from cde_otel._correlation import clean_correlation_id
from cde_otel._reentry import GUARD
from cde_otel._swallowed import swallowed
from cde_otel.instrumentation._targets import Role, Target
from cde_otel.logging import OperationEvents
from cde_otel.redaction import capture_text, scrub_exception
from cde_otel.semconv import (
    ATTR_CODE_FUNCTION_NAME,
    ATTR_CORRELATION_ID,
    ATTR_ERROR_RECOVERABLE,
    ATTR_ERROR_TYPE,
    ATTR_FEATURE_ID,
    ATTR_FEATURE_NEXT_PHASE,
    ATTR_FEATURE_PHASE,
    ATTR_OPERATION,
    ATTR_OUTCOME,
    ATTR_PROJECT_ID,
    ATTR_PROMPT,
    ATTR_PROMPT_LENGTH,
    CORRELATION_KEY,
    FEATURE_PHASES,
    INVALID_PHASE,
    LOG_FIELDS,
    OUTCOME_ERROR,
    OUTCOME_OK,
)

_log = logging.getLogger("cde_otel.instrumentation")
F = TypeVar("F", bound=Callable[..., Any])


def dont_throw(func: F) -> F:
    """Telemetry code must never break the host application."""

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception:
            swallowed("wrapper", _log, "cde-otel telemetry failed inside %s", func.__qualname__)
            return None

    return guarded  # type: ignore[return-value]


def _id(obj: Any) -> str | None:
    value = getattr(obj, "id", None)
    return None if value is None else str(value)


def _is_feature(obj: Any) -> bool:
    return hasattr(obj, "current_phase") and hasattr(obj, "project_id")


def _is_project(obj: Any) -> bool:
    return hasattr(obj, "features") and hasattr(obj, "id")


class _Operation:
    __slots__ = ("attrs", "cpu_ns", "span", "start_ns", "token")

    def __init__(
        self, span: trace.Span, token: object, attrs: dict[str, Any], start_ns: int, cpu_ns: int | None
    ) -> None:
        self.span = span
        self.token = token
        self.attrs = attrs
        self.start_ns = start_ns  # t0: the span's start time
        self.cpu_ns = cpu_ns  # the thread's CPU clock at t0, read only for targets that were slow before


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
    ) -> None:
        self.tracer = tracer
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
        role = target.role
        if role is Role.PROJECT:
            attrs[ATTR_PROJECT_ID] = _id(instance)
            prompt = (args[0] if args else kwargs.get("prompt")) if target.method == "start_feature" else None
            if isinstance(prompt, str):
                attrs[ATTR_PROMPT_LENGTH] = len(prompt)
                if self.capture_content:
                    attrs[ATTR_PROMPT] = capture_text(prompt, self.capture_max_length)
        elif role is Role.FEATURE:
            attrs[ATTR_FEATURE_ID] = _id(instance)
            attrs[ATTR_PROJECT_ID] = str(instance.project_id)
            attrs[ATTR_FEATURE_PHASE] = str(instance.current_phase)
            if target.method == "advance_phase":
                nxt = args[0] if args else kwargs.get("next_phase")
                if isinstance(nxt, str):  # user input: recorded only when it names a phase
                    attrs[ATTR_FEATURE_NEXT_PHASE] = nxt if nxt in FEATURE_PHASES else INVALID_PHASE
        else:
            for candidate in (*args, *kwargs.values()) if role is Role.STORE else (instance, *args):
                if _is_project(candidate):
                    attrs[ATTR_PROJECT_ID] = _id(candidate)
                    break
                if _is_feature(candidate):
                    attrs[ATTR_FEATURE_ID] = _id(candidate)
                    attrs[ATTR_PROJECT_ID] = str(candidate.project_id)
                    break
        project_id = attrs.get(ATTR_PROJECT_ID)
        if project_id is None:
            attrs.pop(ATTR_PROJECT_ID, None)
        elif ATTR_FEATURE_ID not in attrs and role is Role.STORE:
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
        start_ns = time.time_ns()  # t0
        span = self.tracer.start_span(target.qualname, parent, SpanKind.INTERNAL, attrs, start_time=start_ns)
        cid = clean_correlation_id(baggage.get_baggage(CORRELATION_KEY, parent))  # baggage may be a client's
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
        return _Operation(span, token, attrs, start_ns, cpu_ns)

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
            else:
                code = getattr(error, "code", None)
                error_code = code if isinstance(code, str) else type(error).__name__
                metric_attrs[ATTR_OUTCOME] = OUTCOME_ERROR
                metric_attrs[ATTR_ERROR_TYPE] = error_code
                span.set_attribute(ATTR_ERROR_TYPE, error_code)
                recoverable = getattr(error, "recoverable", None)
                if isinstance(recoverable, bool):
                    span.set_attribute(ATTR_ERROR_RECOVERABLE, recoverable)
                message = record_exception_scrubbed(span, error)
                span.set_status(Status(StatusCode.ERROR, f"{error_code}: {message}"[:256]))
                self.errors.add(1, {ATTR_ERROR_TYPE: error_code, ATTR_OPERATION: target.qualname})
            # Recorded while the span is still current, so the exemplar carries its trace and span ids.
            self.duration.record(max(end_ns - op.start_ns, 0) / 1e9, metric_attrs)
            span.end(end_time=end_ns)
            if self.events is not None:
                self._report(target, op, end_ns, error_code)
        finally:
            if span.is_recording():  # something above failed before the span ended
                span.end(end_time=end_ns)
            context.detach(op.token)  # type: ignore[arg-type]

    def _report(self, target: Target, op: _Operation, end_ns: int, error_code: str | None) -> None:
        """The operation's line and, when it failed or was slow, its log record (inside its span's context)."""
        events = self.events
        assert events is not None
        slow = end_ns - op.start_ns > events.slow_after_ns
        if not (slow or error_code is not None or events.ok_lines):
            return  # the defaults: an ok operation's record is its span
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
            if role is Role.STORE and target.method in ("save", "save_state"):
                project_id = attrs.get(ATTR_PROJECT_ID)
                if project_id is not None and self.touched.get(project_id) == attrs.get(ATTR_FEATURE_ID):
                    self.touched.pop(project_id, None)
            return
        if _is_feature(result):
            feature_id = _id(result)
            if feature_id is not None:
                span.set_attribute(ATTR_FEATURE_ID, feature_id)
                span.set_attribute(ATTR_FEATURE_PHASE, str(result.current_phase))
                attrs[ATTR_FEATURE_ID] = feature_id
                self.touched[str(result.project_id)] = feature_id
        elif _is_project(result) and ATTR_PROJECT_ID not in attrs:
            project_id = _id(result)
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
