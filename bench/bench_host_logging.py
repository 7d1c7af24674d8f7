"""Benchmark: what one of the host's own stdlib log records costs with cde-otel's logging hooks.

    .venv/bin/python bench/bench_host_logging.py [--quick]

``configure()`` stamps every stdlib record with trace ids (a log record factory) and delivers it
to cde-otel's OpenTelemetry logs bridge through ``Logger.callHandlers`` (so it survives the host
replacing its root handlers). This measures that price per record, side by side in one process,
interleaved rounds (``_timing``), **process CPU including export** (each timed run ends with a
``force_flush`` of the log pipeline, so the OTLP-JSON encoding and file write are billed to it):

* ``host`` — the host's own logging only: a ``StreamHandler`` to a file with a format string.
* ``stamped`` — plus the record factory (``otelTraceID``... on every record).
* ``cde_otel`` — plus delivery to ``ForeignRecordBridge`` (what ``configure()`` installs).
* ``contrib_handler`` — instead of ours, OpenTelemetry's own way: the contrib ``LoggingHandler``
  in ``root.handlers`` (what ``opentelemetry-instrument`` adds; it is gone when the host replaces
  its root handlers). Same LoggerProvider, processor and exporter.

Every record is logged inside a span, so it carries trace ids. Hooks are switched per timed run
(a few µs per run of hundreds of records).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _cli import print_measurement
from _timing import Interleaved, Loop, interleave

_ITERATIONS = {"full": 400, "quick": 100}
_ROUNDS = {"full": 31, "quick": 5}
_RATIOS = (("cde_otel", "host"), ("stamped", "host"), ("cde_otel", "contrib_handler"), ("contrib_handler", "host"))


def _log_pipeline(directory: Path) -> Any:
    from opentelemetry.exporter.otlp.json.file._log_exporter import FileLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(BatchLogRecordProcessor(FileLogExporter(directory / "logs.jsonl")))
    return provider


def _variants(work: Path, provider: Any) -> dict[str, tuple[Callable[[], None], Callable[[], None]]]:
    """name -> (switch on, switch off)."""
    from opentelemetry.instrumentation.logging.handler import LoggingHandler

    from cde_otel.logging._bridge import ForeignRecordBridge
    from cde_otel.logging._records import deliver_to, stamp_records

    bridge = ForeignRecordBridge(provider)
    contrib = LoggingHandler(logger_provider=provider)
    root = logging.getLogger()

    def nothing() -> None:
        return None

    def ours_on() -> None:
        stamp_records(True, "bench")
        deliver_to([bridge], bridged=True)

    def ours_off() -> None:
        deliver_to((), bridged=False)
        stamp_records(False)

    return {
        "host": (nothing, nothing),
        "stamped": (lambda: stamp_records(True, "bench"), lambda: stamp_records(False)),
        "cde_otel": (ours_on, ours_off),
        "contrib_handler": (lambda: root.addHandler(contrib), lambda: root.removeHandler(contrib)),
    }


def measure_host_logging(*, quick: bool = False) -> dict[str, Any]:
    from opentelemetry.sdk.trace import TracerProvider

    mode = "quick" if quick else "full"
    work = Path(tempfile.mkdtemp(prefix="cde-otel-bench-host-logging-"))
    provider = _log_pipeline(work)
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    host_handler = logging.StreamHandler(open(work / "host.log", "w"))  # noqa: SIM115 - lives with the run
    host_handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root.addHandler(host_handler)
    logger = logging.getLogger("host.app")
    tracer = TracerProvider().get_tracer("bench")
    loops: dict[str, Loop] = {}
    for name, (switch_on, switch_off) in _variants(work, provider).items():

        def loop(n: int, on: Callable[[], None] = switch_on, off: Callable[[], None] = switch_off) -> None:
            on()
            try:
                with tracer.start_as_current_span("request"):
                    for i in range(n):
                        logger.info("request %d handled", i)
                provider.force_flush()
            finally:
                off()

        loops[name] = loop
    timings = interleave(
        loops, rounds=_ROUNDS[mode], iterations=_ITERATIONS[mode], warmup=200, cpu_clock=time.process_time_ns
    )
    provider.shutdown()
    return _result(timings, list(loops), _ROUNDS[mode], _ITERATIONS[mode])


def _result(timings: Interleaved, variants: list[str], rounds: int, iterations: int) -> dict[str, Any]:
    cpu = {name: round(timings.median_ns(name, cpu=True)) for name in variants}
    ratios = {f"{a}/{b}": round(timings.ratio(a, b, cpu=True), 3) for a, b in _RATIOS}
    return {
        "host_log_record_vs_contrib_handler": ratios["cde_otel/contrib_handler"],
        "host_logging": {
            "record": "logger.info('request %d handled', i) inside a span, host StreamHandler to a file",
            "measure": "process CPU ns per record, the log pipeline's flush included (median over rounds)",
            "cpu_ns_per_record": cpu,
            "our_cost_ns_per_record": {
                "stamping": cpu["stamped"] - cpu["host"],
                "stamping_and_bridge": cpu["cde_otel"] - cpu["host"],
                "contrib_handler": cpu["contrib_handler"] - cpu["host"],
            },
            "cpu_ratios": ratios,
            "rounds": rounds,
            "iterations_per_round": iterations,
        },
    }


def main(argv: list[str] | None = None) -> int:
    print_measurement(measure_host_logging, __doc__, argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
