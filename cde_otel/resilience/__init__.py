"""Graceful degradation for the CDE core: retries, circuit breaker, read-only mode, recovery.

    from cde_otel.resilience import ResilientProjectRepository, advance_and_save, breakers

    repo = ResilientProjectRepository()          # persistence = breaker(retry(write)), from settings
    project = repo.get_or_create("/path/to/project")
    project.read_only                             # True while the storage refuses writes
    repo.read_only_projects                       # {path: reason}, for health readiness
    feature = advance_and_save(repo, project, feature_id, "design", {"spec": "..."})
    breakers()                                    # {"state_persistence": "closed"}

Read-only mode, rollback and recovery from backups live in the core repository
(:mod:`cde_otel.core.repository`, pure standard library); this package adds the
parts that use tenacity, pybreaker and the OpenTelemetry API:

* :class:`TransientRetry` — tenacity retries of EAGAIN/EBUSY/EINTR/ETIMEDOUT writes and
  lock timeouts, exponential backoff with jitter, each retry a ``cde.retry`` span event
  and a ``cde.retry.attempts`` count (names: :mod:`cde_otel.semconv`).
* :class:`CircuitBreaker` — pybreaker with an injectable clock; open raises
  ``CircuitBreakerOpenError`` E901; states feed the ``cde.circuit_breaker.state`` gauge.
* :func:`advance_and_save` / :func:`complete_and_save` — save progress at each phase and
  roll the submission back when the save fails.
"""

from cde_otel.resilience._breaker import CircuitBreaker, breakers, is_dependency_failure
from cde_otel.resilience._progress import advance_and_save, complete_and_save
from cde_otel.resilience._repository import PERSISTENCE_BREAKER, BreakerRetryGuard, ResilientProjectRepository
from cde_otel.resilience._retry import TransientRetry, is_transient

__all__ = [
    "PERSISTENCE_BREAKER",
    "BreakerRetryGuard",
    "CircuitBreaker",
    "ResilientProjectRepository",
    "TransientRetry",
    "advance_and_save",
    "breakers",
    "complete_and_save",
    "is_dependency_failure",
    "is_transient",
]
