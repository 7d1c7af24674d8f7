"""Retries of transient persistence failures with exponential backoff and jitter (tenacity).

Transient: ``StateError`` E201 whose ``context["errno"]`` is EAGAIN, EBUSY, EINTR or
ETIMEDOUT, a lock timeout E206, or a raw ``OSError`` with one of those errnos.
Everything else (conflicts, validation, a full or read-only disk) fails at once.

Each failed attempt that is retried adds a ``cde.retry`` event to the current span and
counts one ``cde.retry.attempts`` (attributes ``cde.operation``, ``error.type`` - the exception's class - and, for a
coded error, ``cde.error.code``); giving
up adds ``cde.retry.exhausted``. ``sleep`` is injectable so tests do not wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import tenacity
from opentelemetry.metrics import MeterProvider

from cde_otel._exceptions import StateError
from cde_otel.core import storage
from cde_otel.resilience._telemetry import add_span_event, count_retry, error_attributes
from cde_otel.semconv import (
    ATTR_OPERATION,
    ATTR_RETRY_ATTEMPT,
    ATTR_RETRY_ATTEMPTS,
    ATTR_RETRY_ERRNO,
    ATTR_RETRY_WAIT_S,
    EVENT_RETRY,
    EVENT_RETRY_EXHAUSTED,
)

T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """True when the same operation may succeed if simply tried again in a moment."""
    if isinstance(exc, StateError):
        return exc.code == "E206" or (exc.code == "E201" and exc.context.get("errno") in storage.TRANSIENT_ERRNO_NAMES)
    if isinstance(exc, OSError):
        return exc.errno in storage.TRANSIENT_ERRNOS
    return False


class TransientRetry:
    """A persistence guard: ``guard(operation)`` runs it, retrying transient failures.

    ``attempts`` counts the first try; waits grow as ``initial_wait_s * 2**n`` plus up to
    ``initial_wait_s`` of random jitter, capped at ``max_wait_s``.
    """

    def __init__(
        self,
        *,
        attempts: int = 5,
        max_wait_s: float = 2.0,
        initial_wait_s: float = 0.05,
        operation: str = "FileSystemProjectRepository.save",
        sleep: Callable[[float], None] = time.sleep,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.attempts = max(1, attempts)
        self.max_wait_s = max_wait_s
        self.initial_wait_s = initial_wait_s
        self.operation = operation
        self.sleep = sleep
        self.meter_provider = meter_provider

    def __call__(self, operation: Callable[[], T], /) -> T:
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=tenacity.wait_exponential_jitter(
                multiplier=self.initial_wait_s, max=self.max_wait_s, jitter=self.initial_wait_s
            ),
            retry=tenacity.retry_if_exception(is_transient),
            sleep=self.sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            return retrying(operation)
        except Exception as exc:
            if is_transient(exc):
                add_span_event(
                    EVENT_RETRY_EXHAUSTED,
                    {ATTR_OPERATION: self.operation, ATTR_RETRY_ATTEMPTS: self.attempts, **error_attributes(exc)},
                )  # fmt: skip
            raise

    def _before_sleep(self, state: tenacity.RetryCallState) -> None:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        failure = error_attributes(exc)
        errno_name = exc.context.get("errno") if isinstance(exc, StateError) else None
        attributes: dict[str, str | int | float] = {
            ATTR_OPERATION: self.operation,
            ATTR_RETRY_ATTEMPT: state.attempt_number,
            ATTR_RETRY_WAIT_S: round(state.upcoming_sleep, 6),
            **failure,
        }
        if isinstance(errno_name, str):
            attributes[ATTR_RETRY_ERRNO] = errno_name
        add_span_event(EVENT_RETRY, attributes)
        count_retry(self.meter_provider, {ATTR_OPERATION: self.operation, **failure})
