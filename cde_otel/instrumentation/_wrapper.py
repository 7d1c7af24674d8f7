"""The wrapper put around every target: one span, one histogram record, two log events.

It never raises into the application and never changes a return value or an
exception: telemetry failures are swallowed and logged (``_safe_begin``/``_safe_end``, ``dont_throw``).
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

from cde_otel.instrumentation._targets import Role, Target
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
    LOG_FIELDS,
    OUTCOME_ERROR,
    OUTCOME_OK,
)

_log = logging.getLogger("cde_otel.instrumentation")
F = TypeVar("F", bound=Callable[..., Any])

OperationLogger = Callable[..., None]


def dont_throw(func: F) -> F:
    """Telemetry code must never break the host application."""

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception:
            _log.debug("cde-otel telemetry failed inside %s", func.__qualname__, exc_info=True)
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
    __slots__ = ("attrs", "span", "start", "started", "token")

    def __init__(self, span: trace.Span, token: object, attrs: dict[str, Any], started: Any) -> None:
        self.span = span
        self.token = token
        self.attrs = attrs
        self.started = started  # what the start log event measured (CPU clock for slow operations)
        self.start = time.perf_counter()


class OperationTelemetry:
    """Shared instruments and policies for all wrapped operations of one instrumentor."""

    def __init__(
        self,
        tracer: Tracer,
        duration: Histogram,
        errors: Counter,
        *,
        log_start: OperationLogger | None,
        log_end: OperationLogger | None,
        capture_content: bool = False,
        capture_max_length: int = 256,
    ) -> None:
        self.tracer = tracer
        self.duration = duration
        self.errors = errors
        self.log_start = log_start
        self.log_end = log_end
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
                    attrs[ATTR_PROMPT] = prompt[: self.capture_max_length]
        elif role is Role.FEATURE:
            attrs[ATTR_FEATURE_ID] = _id(instance)
            attrs[ATTR_PROJECT_ID] = str(instance.project_id)
            attrs[ATTR_FEATURE_PHASE] = str(instance.current_phase)
            if target.method == "advance_phase":
                nxt = args[0] if args else kwargs.get("next_phase")
                if isinstance(nxt, str):
                    attrs[ATTR_FEATURE_NEXT_PHASE] = nxt
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
    def begin(self, target: Target, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Operation:
        attrs = self._begin_attrs(target, instance, args, kwargs)
        parent = context.get_current()
        span = self.tracer.start_span(target.qualname, parent, SpanKind.INTERNAL, attrs)
        cid = baggage.get_baggage(CORRELATION_KEY, parent)
        ctx = trace.set_span_in_context(span, parent)
        if not isinstance(cid, str):
            # A top-level operation without a correlation id gets its trace id as one:
            # free, unique, and a log line carrying it leads straight to the trace.
            cid = trace.format_trace_id(span.get_span_context().trace_id)
            ctx = baggage.set_baggage(CORRELATION_KEY, cid, ctx)
        span.set_attribute(ATTR_CORRELATION_ID, cid)
        attrs[ATTR_CORRELATION_ID] = cid
        token = context.attach(ctx)
        started = self.log_start(target.qualname, **_log_ids(attrs)) if self.log_start is not None else None
        return _Operation(span, token, attrs, started)

    def end(self, target: Target, op: _Operation, result: Any = None, error: BaseException | None = None) -> None:
        duration = time.perf_counter() - op.start
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
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, f"{error_code}: {error}"[:256]))
                self.errors.add(1, {ATTR_ERROR_TYPE: error_code, ATTR_OPERATION: target.qualname})
            # Recorded while the span is still current, so exemplars and the end log event
            # carry this operation's trace and span ids.
            self.duration.record(duration, metric_attrs)
            if self.log_end is not None:
                self.log_end(
                    target.qualname,
                    duration * 1000.0,
                    metric_attrs[ATTR_OUTCOME],
                    error_code=error_code,
                    started=op.started,
                    **_log_ids(attrs),
                )
        finally:
            span.end()
            context.detach(op.token)  # type: ignore[arg-type]

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
    def _safe_begin(self, target: Target, instance: Any, args: Any, kwargs: Any) -> _Operation | None:
        if not self.active or not is_instrumentation_enabled():
            return None
        try:
            return self.begin(target, instance, args, kwargs)
        except Exception:
            _log.debug("cde-otel: starting telemetry for %s failed", target.spec, exc_info=True)
            return None

    def _safe_end(self, target: Target, op: _Operation, result: Any = None, error: BaseException | None = None) -> None:
        try:
            self.end(target, op, result, error)
        except Exception:
            _log.debug("cde-otel: ending telemetry for %s failed", target.spec, exc_info=True)

    def wrapper_for(self, target: Target, func: Callable[..., Any]) -> Callable[..., Any]:
        """A wrapt-style wrapper ``(wrapped, instance, args, kwargs)`` for ``target``.

        Telemetry failures are swallowed and logged (never raised); the call's own result or
        exception passes through untouched.
        """
        begin, end = self._safe_begin, self._safe_end

        if inspect.iscoroutinefunction(func):

            async def async_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
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
            op = begin(target, instance, args, kwargs)
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
