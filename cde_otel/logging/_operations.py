"""Operation logging (PROD-02.2/02.4) for the instrumentation wrapper.

Two events per operation on the structlog logger ``cde_otel.operations``::

    started = log_operation_start("start_feature", project_id=p.id)
    ...  # the operation
    log_operation_end("start_feature", duration_ms, "ok", started=started, project_id=p.id)

``"<operation> started"`` (INFO) then ``"<operation> succeeded"`` (INFO) or ``"<operation> failed"``
(WARNING, with ``error_code``). An operation slower than ``CDE_OTEL_SLOW_OPERATION_MS`` logs its
end at WARNING with ``slow=True`` and its resource usage: ``rss_mb`` (psutil) and ``cpu_ms``, the
process CPU time spent since ``started`` (or as given). psutil is touched only for slow operations.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal, NamedTuple

import structlog

from cde_otel.logging._config import get_logger, is_configured, slow_operation_ms

OPERATIONS_LOGGER = "cde_otel.operations"
Outcome = Literal["ok", "error"]

_logger = get_logger(OPERATIONS_LOGGER)
_stdlib_logger = logging.getLogger(OPERATIONS_LOGGER)
_process: Any = None  # psutil.Process, created on the first slow operation


class OperationStart(NamedTuple):
    """What ``log_operation_start`` measured: monotonic and process-CPU clocks, in ns."""

    monotonic_ns: int
    cpu_ns: int


def log_operation_start(operation: str, **ids: Any) -> OperationStart:
    """Logs ``"<operation> started"`` and returns the clocks ``log_operation_end`` needs for CPU time."""
    started = OperationStart(time.perf_counter_ns(), time.process_time_ns())
    if _enabled(logging.INFO):
        _logger.info(f"{operation} started", operation=operation, **ids)
    return started


def log_operation_end(
    operation: str,
    duration_ms: float,
    outcome: Outcome,
    error_code: str | None = None,
    *,
    cpu_ms: float | None = None,
    rss_mb: float | None = None,
    started: OperationStart | None = None,
    **ids: Any,
) -> None:
    """Logs ``"<operation> succeeded|failed"`` with ``duration_ms``, ``outcome`` and ``error_code``."""
    slow = duration_ms > slow_operation_ms()
    level = logging.WARNING if slow or outcome != "ok" else logging.INFO
    if not _enabled(level):
        return
    fields: dict[str, Any] = {
        "operation": operation,
        "duration_ms": round(duration_ms, 3),
        "outcome": outcome,
        "error_code": error_code,
        **ids,
    }
    if slow:
        fields["slow"] = True
        if cpu_ms is None and started is not None:
            cpu_ms = (time.process_time_ns() - started.cpu_ns) / 1e6
        if rss_mb is None:
            rss_mb = _rss_mb()
    if cpu_ms is not None:
        fields["cpu_ms"] = round(cpu_ms, 3)
    if rss_mb is not None:
        fields["rss_mb"] = round(rss_mb, 1)
    verb = "succeeded" if outcome == "ok" else "failed"
    _logger.log(level, f"{operation} {verb}", **fields)


def _enabled(level: int) -> bool:
    """Skips building an event nobody will see; a foreign structlog setup (``capture_logs``) sees everything."""
    if is_configured() or not structlog.is_configured():
        return _stdlib_logger.isEnabledFor(level)
    return True


def _rss_mb() -> float | None:
    global _process
    try:
        if _process is None:
            import psutil

            _process = psutil.Process()
        return float(_process.memory_info().rss) / (1024 * 1024)
    except Exception:  # resource usage is a nice-to-have; never fail the caller's operation for it
        return None
