"""Benchmark: the embedded default's export (encode + write one OTLP/JSON line) per item, three ways.

    .venv/bin/python bench/bench_local_export.py [--quick]

The same batches (spans shaped like an MCP tool call's: SERVER/INTERNAL spans with 8-12 attributes,
an event on some; log records with a string body and 6 attributes) are written by:

* ``contrib`` -- the contrib beta exporters of ``opentelemetry-exporter-otlp-json-file`` (what the
  embedded default used before): the SDK data is turned into message objects, ``to_dict()``, then
  Python's ``json``. The baseline; it shares none of our code.
* ``proto_dict`` -- the SDK's own protobuf encoders (``encode_spans``/``encode_logs``), then
  ``MessageToDict`` and orjson (with the ids turned into hex as the OTLP JSON mapping wants):
  "the SDK's messages with a fast serialiser".
* ``ours`` -- ``cde_otel.telemetry._local_files``: plain dicts straight from the SDK data, orjson,
  one locked ``write`` into the rotating file.

Every variant writes into its own file in a temporary directory; the CPU time of the calling
thread per exported item is measured, interleaved round by round (``_timing``), and reported as
ratios to ``contrib`` (lower is cheaper). Every line written is parsed back and counted at the end,
so a variant that wrote nothing cannot look cheap.
"""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
from _cli import print_measurement
from _timing import interleave
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

BATCH = 64  # items per export call: a busy server's batch between two schedule ticks


def _resource() -> Resource:
    return Resource.create({"service.name": "bench", "service.version": "1.0", "host.name": "h", "process.pid": 1})


def _spans(count: int) -> Sequence[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=_resource())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("cde_otel.instrumentation.mcp", "1.0")
    for n in range(count // 5):
        attrs = {"mcp.method.name": "tools/call", "gen_ai.tool.name": "cde_startFeature", "jsonrpc.request.id": str(n)}
        with tracer.start_as_current_span("tools/call cde_startFeature", kind=SpanKind.SERVER, attributes=attrs):
            for op in ("Project.start_feature", "Repository.load", "Repository.save", "Project.advance"):
                with tracer.start_as_current_span(op) as span:
                    span.set_attributes(
                        {
                            "code.function.name": op,
                            "cde.project.id": "p-1234",
                            "cde.feature.id": f"f-{n}",
                            "cde.phase": "design",
                            "cde.correlation_id": "c0ffee",
                            "cde.state.revision": n,
                            "cde.duration_ms": 1.25,
                            "cde.ok": True,
                        }
                    )
                    if op == "Repository.save":
                        span.add_event("saved", {"bytes": 2048})
    provider.shutdown()
    return exporter.get_finished_spans()


def _logs(count: int) -> Sequence[ReadableLogRecord]:
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    provider = LoggerProvider(resource=_resource())
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("cde_orchestrator.telemetry")
    for n in range(count):
        logger.emit(
            body=f"Processing request of type CallToolRequest {n}",
            severity_number=SeverityNumber.INFO,
            severity_text="INFO",
            attributes={"code.file.path": "server.py", "code.line.number": 42, "n": n, "cde.correlation_id": "c0"},
        )
    provider.shutdown()
    return list(exporter.get_finished_logs())


def _hex_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: base64.b64decode(item).hex() if key in ("traceId", "spanId", "parentSpanId") else _hex_ids(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_hex_ids(item) for item in value]
    return value


class _ProtoDictWriter:
    """The SDK's protobuf encoder, MessageToDict, orjson, appended to a file."""

    def __init__(self, path: Path, encode: Callable[[Any], Any]) -> None:
        from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped]

        self._to_dict = MessageToDict
        self._encode = encode
        self._file = path.open("ab")

    def export(self, batch: Any) -> None:
        message = self._to_dict(self._encode(batch), use_integers_for_enums=True)
        self._file.write(orjson.dumps(_hex_ids(message), option=orjson.OPT_APPEND_NEWLINE))
        self._file.flush()

    def shutdown(self) -> None:
        self._file.close()


def _variants(directory: Path, signal: str) -> dict[str, Any]:
    from opentelemetry.exporter.otlp.json.file import FileSpanExporter
    from opentelemetry.exporter.otlp.json.file._log_exporter import FileLogExporter
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from cde_otel.telemetry._local_files import local_exporter

    ours_dir = directory / "ours"
    if signal == "traces":
        return {
            "contrib": FileSpanExporter(directory / "contrib-traces.jsonl"),
            "proto_dict": _ProtoDictWriter(directory / "proto-traces.jsonl", encode_spans),
            "ours": local_exporter("traces", ours_dir, max_mb=10_000),
        }
    return {
        "contrib": FileLogExporter(directory / "contrib-logs.jsonl"),
        "proto_dict": _ProtoDictWriter(directory / "proto-logs.jsonl", encode_logs),
        "ours": local_exporter("logs", ours_dir, max_mb=10_000),
    }


def _items_written(path: Path, signal: str) -> int:
    outer, scoped, inner = (
        ("resourceSpans", "scopeSpans", "spans") if signal == "traces" else ("resourceLogs", "scopeLogs", "logRecords")
    )
    count = 0
    for line in path.read_bytes().splitlines():
        request = orjson.loads(line)
        count += sum(len(s[inner]) for r in request[outer] for s in r[scoped])
    return count


def _loop(exporter: Any, batches: list[Any], exports: dict[str, int], name: str) -> Callable[[int], None]:
    def loop(n: int) -> None:
        exports[name] += n
        for i in range(n):
            exporter.export(batches[i % len(batches)])

    return loop


def measure_local_export(quick: bool = False) -> dict[str, Any]:
    rounds, iterations = (5, 10) if quick else (15, 40)
    items = {"traces": _spans(BATCH * 5), "logs": _logs(BATCH * 4)}
    result: dict[str, Any] = {"load_average": [round(x, 2) for x in os.getloadavg()], "batch": BATCH}
    with tempfile.TemporaryDirectory() as tmp:
        for signal, data in items.items():
            directory = Path(tmp) / signal
            directory.mkdir()
            variants = _variants(directory, signal)
            batches = [data[i : i + BATCH] for i in range(0, len(data) - BATCH + 1, BATCH)]

            exports = dict.fromkeys(variants, 0)
            timings = interleave(
                {name: _loop(exporter, batches, exports, name) for name, exporter in variants.items()},
                rounds=rounds,
                iterations=iterations,
                warmup=5,
            )
            for exporter in variants.values():
                exporter.shutdown()
            files = {
                "contrib": directory / f"contrib-{signal}.jsonl",
                "proto_dict": directory / f"proto-{signal}.jsonl",
                "ours": directory / "ours" / f"{signal}.jsonl",
            }
            written = {name: _items_written(path, signal) for name, path in files.items()}
            expected = {name: exports[name] * BATCH for name in variants}
            assert written == expected, f"items written {written} != exported {expected}"
            per_item = {name: round(timings.median_ns(name, cpu=True) / BATCH, 1) for name in variants}
            result[signal] = {
                "cpu_ns_per_item": per_item,
                "ours_vs_contrib": round(timings.ratio("ours", "contrib", cpu=True), 3),
                "proto_dict_vs_contrib": round(timings.ratio("proto_dict", "contrib", cpu=True), 3),
                "ours_vs_proto_dict": round(timings.ratio("ours", "proto_dict", cpu=True), 3),
                "bytes_per_item": {
                    name: round(path.stat().st_size / max(1, written[name]), 1) for name, path in files.items()
                },
            }
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return result


def main(argv: list[str] | None = None) -> int:
    print_measurement(measure_local_export, __doc__, argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
