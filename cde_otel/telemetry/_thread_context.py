"""The OpenTelemetry context (trace, baggage, correlation id) carried into threads.

What contrib's ``opentelemetry-instrumentation-threading`` does (``Thread``/``Timer`` keep the
context of the thread that started them; ``ThreadPoolExecutor.submit`` runs the task in the
submitter's context), written here because that package pins ``opentelemetry-instrumentation``
exactly and its releases lag the SDK's: as a required dependency it stopped cde-otel from being
installed beside a framework that wants the newest OpenTelemetry API. When contrib's instrumentor
is active too (``opentelemetry-instrument`` with it installed), both attach the same context:
harmless.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from concurrent import futures
from typing import Any

from opentelemetry import context
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap
from wrapt import wrap_function_wrapper

_CONTEXT_ATTRIBUTE = "_cde_otel_context"


def _start(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    setattr(instance, _CONTEXT_ATTRIBUTE, context.get_current())
    return wrapped(*args, **kwargs)


def _run(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    captured = getattr(instance, _CONTEXT_ATTRIBUTE, None)
    token = context.attach(captured) if captured is not None else None
    try:
        return wrapped(*args, **kwargs)
    finally:
        if token is not None:
            context.detach(token)


def _submit(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if not args:  # a malformed call: let the executor say so
        return wrapped(*args, **kwargs)
    task, captured = args[0], context.get_current()

    def in_context(*task_args: Any, **task_kwargs: Any) -> Any:
        token = context.attach(captured)
        try:
            return task(*task_args, **task_kwargs)
        finally:
            context.detach(token)

    return wrapped(in_context, *args[1:], **kwargs)


class ThreadContextInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Carries the current context into threads, timers and thread-pool tasks."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        for owner in (threading.Thread, threading.Timer):
            wrap_function_wrapper(owner, "start", _start)
            wrap_function_wrapper(owner, "run", _run)
        wrap_function_wrapper(futures.ThreadPoolExecutor, "submit", _submit)

    def _uninstrument(self, **kwargs: Any) -> None:
        for owner in (threading.Thread, threading.Timer):
            unwrap(owner, "start")
            unwrap(owner, "run")
        unwrap(futures.ThreadPoolExecutor, "submit")
