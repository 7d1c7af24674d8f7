"""Bounded shutdown: the three providers flushed and shut down in parallel, by a deadline."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cde_otel._otel_compat import queued_items
from cde_otel.telemetry._export_status import ExportStatus, quiet_export_logs
from cde_otel.telemetry._providers import remove_health_reader

if TYPE_CHECKING:
    from cde_otel.telemetry._pipeline import Pipeline


@dataclass(frozen=True)
class ShutdownReport:
    """What one bounded shutdown achieved."""

    seconds: float
    completed: bool  # every provider finished within the budget
    unsent: dict[str, int]  # per signal: items whose export failed, was cut short, or never started
    destination: str
    budget_s: float

    def warning(self) -> str | None:
        """One sentence for the host when something was not sent, else None."""
        names = {"traces": "spans", "logs": "log records", "metrics": "metric points"}
        parts = [f"{self.unsent[signal]:,} {name}" for signal, name in names.items() if self.unsent.get(signal)]
        if not parts:
            return None
        listed = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
        return (
            f"{listed} could not be sent to {self.destination or 'the exporters'} before exit "
            f"(collector unreachable or too slow; shutdown budget {self.budget_s:g} s, CDE_OTEL_SHUTDOWN_TIMEOUT_S)"
        )


def flush(pipeline: Pipeline, timeout_millis: int = 10_000) -> None:
    pipeline.tracer_provider.force_flush(timeout_millis)
    pipeline.meter_provider.force_flush(timeout_millis)
    pipeline.logger_provider.force_flush(timeout_millis)


def shutdown_pipeline(pipeline: Pipeline, timeout_s: float | None = None) -> ShutdownReport:
    """Flushes and shuts the three providers down in parallel, within ``timeout_s`` (default: the setting).

    Only cde-otel's own: a provider of the application (``pipeline.app_signals``) is its to shut down.

    Never raises. The budget is for the whole exit: this returns by ``budget - reserve`` (a
    quarter of it, at most 0.5 s, left for the interpreter's own teardown, which takes 0.1-0.2 s
    with the SDK and its exporters imported, more on a loaded machine). The exporters are
    aborted, which ends their retry back-off, when the budget is nearly spent — or at once when
    the collector is known to be down (every signal's last export failed, or its port refuses
    connections). Whatever still runs at the deadline is left behind (daemon threads) and
    counted as unsent. The exporters' per-retry warnings are counted, not printed, meanwhile.
    """
    budget = pipeline.shutdown_timeout_s if timeout_s is None else timeout_s
    started = time.monotonic()
    if "metrics" in pipeline.app_signals and pipeline.health_reader is not None:
        _detach_health_reader(pipeline)
    owned = [
        (signal, provider)
        for signal, provider in (
            ("traces", pipeline.tracer_provider),
            ("logs", pipeline.logger_provider),
            ("metrics", pipeline.meter_provider),
        )
        if signal not in pipeline.app_signals
    ]
    if not owned:
        return ShutdownReport(0.0, True, {}, pipeline.destination, budget)
    deadline = started + budget - min(0.5, budget / 4)  # the rest is for the interpreter's teardown
    margin = min(0.25, budget / 8)
    status = pipeline.export_status or ExportStatus()
    if pipeline.deferred_measurements is not None:
        pipeline.deferred_measurements.close()  # a record made after the last collection is not queued
    with quiet_export_logs(status):
        workers = [_start_shutdown(name, provider) for name, provider in owned]
        if status.all_failing() or _refused(pipeline.otlp_endpoints, min(0.2, margin)):
            _abort(pipeline)  # retrying a collector that is down only holds the host's exit
        # The abort needs a moment to take effect (a back-off wait returns at once, a request in
        # flight ends with its socket).
        _join(workers, deadline - margin)
        if any(worker.is_alive() for worker in workers):
            _abort(pipeline)
        _join(workers, deadline)
        completed = not any(worker.is_alive() for worker in workers)
        unsent = status.unsent()
        for signal, processor in pipeline.batch_processors.items():
            unsent[signal] = unsent.get(signal, 0) + queued_items(processor)
    unsent = {signal: n for signal, n in unsent.items() if n}
    return ShutdownReport(round(time.monotonic() - started, 3), completed, unsent, pipeline.destination, budget)


def _detach_health_reader(pipeline: Pipeline) -> None:
    """Takes health's reader off the application's MeterProvider (configure() put it there)."""
    reader, pipeline.health_reader = pipeline.health_reader, None
    try:
        if reader is not None:
            remove_health_reader(pipeline.meter_provider, reader)
    except Exception:  # never raises: the host's exit must not fail because of telemetry
        import logging

        logging.getLogger("cde_otel.telemetry").debug("cde-otel: removing the health reader failed", exc_info=True)


def _abort(pipeline: Pipeline) -> None:
    for exporter in pipeline.tracked_exporters:
        exporter.abort()


def _refused(endpoints: tuple[tuple[str, int], ...], timeout_s: float) -> bool:
    """True when every OTLP endpoint refuses connections (nothing listens): no point in retrying.

    Only the endpoints the exporters were configured with are contacted; the check is bounded by
    ``timeout_s`` including name resolution (it runs in a daemon thread).
    """
    if not endpoints:
        return False
    refused: list[bool] = []

    def probe() -> None:
        import socket

        for host, port in endpoints:
            try:
                socket.create_connection((host, port), timeout=timeout_s).close()
            except ConnectionRefusedError:
                refused.append(True)
                continue
            except OSError:
                pass
            refused.append(False)

    checker = threading.Thread(target=probe, name="cde-otel-shutdown-probe", daemon=True)
    checker.start()
    checker.join(timeout_s)
    return len(refused) == len(endpoints) and all(refused)


def _start_shutdown(name: str, provider: Any) -> threading.Thread:
    def run() -> None:
        try:
            provider.shutdown()
        except Exception:  # a failing exporter must not stop the others, nor reach the host
            import logging

            logging.getLogger("cde_otel.telemetry").debug("cde-otel: %s shutdown failed", name, exc_info=True)

    worker = threading.Thread(target=run, name=f"cde-otel-shutdown-{name}", daemon=True)
    worker.start()
    return worker


def _join(workers: list[threading.Thread], deadline: float) -> None:
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
