"""The file-system repository with its persistence guarded by breaker(retry(write)).

    repo = ResilientProjectRepository()            # configured from load_settings()
    repo = ResilientProjectRepository(settings, sleep=fake_sleep, clock=fake_clock)

Transient write failures are retried (``retry_attempts``, ``retry_max_wait_s``); every
attempt goes through the breaker, and a dependency that keeps failing opens it
(``breaker_failures`` failed attempts in a row, ``breaker_timeout_s``). Each repository has
its own breaker, registered as ``state_persistence``; health reports the worst of them.
Read-only mode, rollback and recovery come from the base repository.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from opentelemetry.metrics import MeterProvider

from cde_otel.core.repository import FileSystemProjectRepository
from cde_otel.resilience._breaker import CircuitBreaker
from cde_otel.resilience._retry import TransientRetry
from cde_otel.settings import Settings, load_settings

T = TypeVar("T")

PERSISTENCE_BREAKER = "state_persistence"


class BreakerRetryGuard:
    """``retry(breaker.call(operation))``: each attempt is one breaker call; backoff happens outside it.

    A failed attempt counts toward the breaker; once it opens, E901 is not retried.
    """

    def __init__(self, breaker: CircuitBreaker, retry: TransientRetry) -> None:
        self.breaker = breaker
        self.retry = retry

    def __call__(self, operation: Callable[[], T], /) -> T:
        return self.retry(lambda: self.breaker.call(operation))


class ResilientProjectRepository(FileSystemProjectRepository):
    """A :class:`FileSystemProjectRepository` whose writes are retried and circuit-broken."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        breaker: CircuitBreaker | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        config = settings or load_settings()
        self.breaker = breaker or CircuitBreaker(
            config.breaker_failures,
            config.breaker_timeout_s,
            name=PERSISTENCE_BREAKER,
            clock=clock,
            meter_provider=meter_provider,
        )
        self.retry = TransientRetry(
            attempts=config.retry_attempts,
            max_wait_s=config.retry_max_wait_s,
            sleep=sleep,
            meter_provider=meter_provider,
        )
        super().__init__(
            lock_timeout=config.state_lock_timeout_s,
            backup_retention=config.backup_retention,
            persistence_guard=BreakerRetryGuard(self.breaker, self.retry),
            readonly_probe_s=config.readonly_probe_s,
            clock=clock,
        )
