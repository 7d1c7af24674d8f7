"""A circuit breaker on top of ``pybreaker``, with an injectable clock and telemetry.

    breaker = CircuitBreaker(failure_threshold=5, timeout=60, name="state_persistence")
    breaker.call(write_state, project)   # raises CircuitBreakerOpenError E901 while open

* **Counting** — pybreaker counts *consecutive* failures; an excluded exception counts as
  a success (it resets the count and closes a half-open breaker: the dependency answered).
  Only failures that say a dependency is broken count (:func:`is_dependency_failure`):
  ``OSError`` and the storage errors E201/E206/E210. A caller's bad input (validation
  errors, a ``TypeError`` or ``UnicodeError`` from its data), conflicts E202 and invalid
  transitions never open the breaker.
* **Clock** — pybreaker compares ``datetime.now(UTC)`` with the ``opened_at`` its storage
  returns. :class:`_ClockedStorage` records the opening on the injected monotonic clock
  and reports ``opened_at`` shifted by the elapsed injected time, so the cooldown follows
  the injected clock exactly (tests advance it instead of waiting).
* **State** — ``closed`` | ``open`` | ``half_open``; an open breaker whose cooldown has
  elapsed reports ``half_open`` (its next call is the trial).
* **Thread safety** — the guarded call runs outside pybreaker's lock (its ``calling()``
  context), so one slow call never holds up the others; the counters are updated under
  the storage's own lock. While open or half-open exactly one call is the trial: others
  are refused with E901 until it ends. Guard one *attempt* per call and retry outside
  (``retry(lambda: breaker.call(attempt))``): each failed attempt counts, and backoff
  sleeps happen outside the breaker.
* **Telemetry** — each state change adds ``cde.circuit_breaker.state_change`` to the
  current span and is logged on ``cde_otel.resilience``; the observable gauge
  ``cde.circuit_breaker.state`` (0 closed, 1 half_open, 2 open, attribute
  ``cde.breaker.name``) reports every live breaker; :func:`breakers` gives the same
  ``{name: state}`` map to health checks. Several live breakers may share a name (each
  ``ResilientProjectRepository`` has its own ``state_persistence`` breaker): the name then
  reports the worst of their states, so an open breaker is seen whichever one opened.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pybreaker
from opentelemetry.metrics import MeterProvider

from cde_otel._exceptions import CDEError, CircuitBreakerOpenError
from cde_otel.resilience._telemetry import add_span_event, observe_breakers
from cde_otel.semconv import (
    ATTR_BREAKER_NAME,
    ATTR_BREAKER_PREVIOUS_STATE,
    ATTR_BREAKER_STATE,
    BREAKER_STATE_VALUES,
    EVENT_BREAKER_REJECTED,
    EVENT_BREAKER_STATE_CHANGE,
)

T = TypeVar("T")

#: Storage error codes that mean the file system itself is failing.
DEPENDENCY_ERROR_CODES = frozenset({"E201", "E206", "E210"})

_log = logging.getLogger("cde_otel.resilience")
_registry_lock = threading.Lock()
_registry: dict[str, weakref.WeakSet[CircuitBreaker]] = {}


def is_dependency_failure(exc: BaseException) -> bool:
    """True when ``exc`` says a dependency (storage, I/O) is broken, rather than the request being wrong."""
    if isinstance(exc, CDEError):
        return exc.code in DEPENDENCY_ERROR_CODES
    return isinstance(exc, OSError)


def breakers() -> dict[str, str]:
    """``{name: state}`` of every live, registered circuit breaker (the worst state when a name is shared)."""
    with _registry_lock:
        members = {name: list(group) for name, group in _registry.items()}
        for name in [name for name, group in members.items() if not group]:
            del _registry[name]
    return {
        name: max((breaker.state for breaker in group), key=BREAKER_STATE_VALUES.__getitem__)
        for name, group in members.items()
        if group
    }


def _registered_states() -> list[tuple[str, str]]:
    return list(breakers().items())


def _state_name(pybreaker_state: str) -> str:
    return pybreaker_state.replace("-", "_")


class _ClockedStorage(pybreaker.CircuitMemoryStorage):
    """pybreaker's memory storage, timing the open period on an injectable monotonic clock.

    Counter updates take a lock: calls run outside pybreaker's own lock, concurrently.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(pybreaker.STATE_CLOSED)
        self._clock = clock
        self._counter_lock = threading.Lock()
        self.opened_clock: float | None = None

    def increment_counter(self) -> None:
        with self._counter_lock:
            super().increment_counter()

    def reset_counter(self) -> None:
        with self._counter_lock:
            super().reset_counter()

    def increment_success_counter(self) -> None:
        with self._counter_lock:
            super().increment_success_counter()

    @property
    def opened_at(self) -> datetime | None:
        if self.opened_clock is None:
            return None
        return datetime.now(UTC) - timedelta(seconds=self._clock() - self.opened_clock)

    @opened_at.setter
    def opened_at(self, _wall_time: datetime) -> None:
        self.opened_clock = self._clock()


class _Listener(pybreaker.CircuitBreakerListener):
    def __init__(self, owner: CircuitBreaker) -> None:
        self._owner = weakref.ref(owner)

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        owner = self._owner()
        if owner is None:
            return
        previous = _state_name(old_state.name) if old_state is not None else "none"
        current = _state_name(new_state.name)
        owner.transitions.append((previous, current))
        add_span_event(
            EVENT_BREAKER_STATE_CHANGE,
            {ATTR_BREAKER_NAME: owner.name, ATTR_BREAKER_PREVIOUS_STATE: previous, ATTR_BREAKER_STATE: current},
        )
        log = _log.warning if current == "open" else _log.info
        log(
            "circuit breaker %s: %s -> %s",
            owner.name,
            previous,
            current,
            extra={"error_code": "E901" if current == "open" else None, "cde_breaker_name": owner.name},
        )


class CircuitBreaker:
    """Stops calling a failing dependency for ``timeout`` seconds after ``failure_threshold`` failures."""

    def __init__(
        self,
        failure_threshold: int = 5,
        timeout: float = 60,
        *,
        name: str = "default",
        counts: Callable[[BaseException], bool] = is_dependency_failure,
        clock: Callable[[], float] = time.monotonic,
        meter_provider: MeterProvider | None = None,
        register: bool = True,
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.timeout = float(timeout)
        self.transitions: list[tuple[str, str]] = []
        self._clock = clock
        self._storage = _ClockedStorage(clock)
        self._trial = threading.Lock()
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=failure_threshold,
            reset_timeout=self.timeout,
            exclude=[lambda exc: not counts(exc)],
            listeners=[_Listener(self)],
            state_storage=self._storage,
            name=name,
            # The failure that trips the breaker propagates as itself; later calls get E901.
            throw_new_error_on_trip=False,
        )
        if register:
            with _registry_lock:
                _registry.setdefault(name, weakref.WeakSet()).add(self)
            observe_breakers(meter_provider, _registered_states)

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half_open`` (an open breaker past its cooldown is ``half_open``)."""
        current = _state_name(self._breaker.current_state)
        if current == "open" and self.remaining_cooldown() <= 0:
            return "half_open"
        return current

    @property
    def failure_count(self) -> int:
        """Consecutive counted failures so far."""
        return int(self._breaker.fail_counter)

    def remaining_cooldown(self) -> float:
        """Seconds until an open breaker lets a trial call through (0 when not open)."""
        opened = self._storage.opened_clock
        if self._breaker.current_state != pybreaker.STATE_OPEN or opened is None:
            return 0.0
        return max(0.0, self.timeout - (self._clock() - opened))

    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Calls ``func`` unless the breaker is open; raises ``CircuitBreakerOpenError`` E901 when it is.

        ``func`` runs without any lock held; while the breaker is not closed, only one call at
        a time is let through (the trial), the others are refused with E901.
        """
        trial = self.state != "closed"
        if trial and not self._trial.acquire(blocking=False):
            raise self._refused("a trial call is in progress")
        try:
            with self._breaker.calling():
                return func(*args, **kwargs)
        except pybreaker.CircuitBreakerError:
            raise self._refused() from None
        finally:
            if trial:
                self._trial.release()

    def _refused(self, why: str | None = None) -> CircuitBreakerOpenError:
        remaining = round(self.remaining_cooldown(), 3)
        add_span_event(EVENT_BREAKER_REJECTED, {ATTR_BREAKER_NAME: self.name})
        return CircuitBreakerOpenError(
            f"circuit breaker {self.name!r} is open after {self.failure_threshold} consecutive failures; "
            + (f"{why}" if why else f"calls resume in {remaining}s"),
            "E901",
            {"name": self.name, "remaining_s": remaining, "failure_threshold": self.failure_threshold,
             "timeout_s": self.timeout},
        )  # fmt: skip

    def reset(self) -> None:
        """Closes the breaker by hand (an operator fixed the dependency)."""
        self._breaker.close()

    def __repr__(self) -> str:
        return f"CircuitBreaker(name={self.name!r}, state={self.state!r}, failures={self.failure_count})"
