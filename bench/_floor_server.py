"""The floor of the MCP benchmark: the orchestrator fixture with the same signals hand-written
on the plain OpenTelemetry SDK, sharing none of cde-otel's code.

    <fixture venv>/bin/python bench/_floor_server.py      (PYTHONPATH: tests/mcp_fixtures)

What a careful user would write by hand to get what cde-otel emits:

* a span per domain operation (the same methods cde-otel patches: ``Project``/``Feature``
  workflow methods and the repository's), each ``tracer.start_as_current_span`` with the
  attributes cde-otel records (operation, function, project and feature ids - from the arguments,
  the result, or the feature last changed in the project a save writes -, phase, next phase,
  prompt length, correlation id), and a ``cde.operation.duration`` record;
* a SERVER span around each MCP request (mcp 1.x ``Server._handle_request``, and ``initialize``),
  its parent taken from the request's ``_meta`` (``traceparent`` & co.), the method, tool, request
  id, the arguments that identify the work, the protocol version and the client's name and
  version, the feature a tool started, and a correlation id (the trace id); an
  ``mcp.server.operation.duration`` record;
* every host record through the SDK's ``LoggingHandler`` on the root logger (and on ``fastmcp``'s,
  which does not propagate), put back after the server's ``logging.basicConfig(force=True)`` removed it,
  with the attribute cde-otel's bridge gives a record (its correlation id) instead of the handler's
  three ``code.*`` ones;
* the stock exporters: the contrib OTLP-JSON file exporters (``opentelemetry-exporter-otlp-json-file``)
  into ``CDE_FLOOR_DIR``, or OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; batch
  processors and the periodic metric reader with cde-otel's default sizes and interval, and the
  same exponential histograms.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import inspect
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _orchestrator_server import serve  # bench/ is this script's directory
from opentelemetry import propagate, trace
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

#: The domain methods cde-otel patches in the upstream package (its UPSTREAM_TARGETS), written out again.
DOMAIN_METHODS: dict[str, dict[str, tuple[str, ...]]] = {
    "cde_orchestrator.domain.entities": {
        "Project": ("start_feature", "activate", "archive", "transition_status"),
        "Feature": ("advance_phase", "complete", "fail"),
    },
    "cde_orchestrator.adapters.filesystem_project_repository": {
        "FileSystemProjectRepository": ("get_or_create", "get_by_path", "get_by_id", "save", "list_all", "delete"),
    },
}


#: The tool arguments that identify the work, as span attributes (what cde-otel records too).
_WORK_ARGUMENTS = {"feature_id": "cde.feature.id", "project_path": "cde.project.path", "phase_id": "cde.feature.phase"}
#: The request's correlation id (its trace id), for the spans inside it.
_correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("floor_correlation_id", default=None)
#: The request's SERVER span, which names the feature a tool started.
_request_span: contextvars.ContextVar[tuple[trace.Span, dict[str, Any]] | None] = contextvars.ContextVar(
    "floor_request_span", default=None
)
#: Project id -> the feature last changed in it, so the save that persists the change names it too.
_touched: dict[str, str] = {}


def _exporters() -> tuple[Any, Any, Any]:
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(), OTLPMetricExporter(), OTLPLogExporter()
    from opentelemetry.exporter.otlp.json.file import FileMetricExporter, FileSpanExporter
    from opentelemetry.exporter.otlp.json.file._log_exporter import FileLogExporter

    directory = Path(os.environ["CDE_FLOOR_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    return (
        FileSpanExporter(directory / "traces.jsonl"),
        FileMetricExporter(directory / "metrics.jsonl"),
        FileLogExporter(directory / "logs.jsonl"),
    )


def _providers() -> tuple[TracerProvider, MeterProvider, LoggerProvider]:
    resource = Resource.create()
    spans, metrics, logs = _exporters()
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(spans))
    meter_provider = MeterProvider(
        resource=resource,
        metric_readers=[PeriodicExportingMetricReader(metrics, export_interval_millis=_metric_interval_ms())],
        views=[View(instrument_type=Histogram, aggregation=ExponentialBucketHistogramAggregation(max_size=750))],
    )
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(logs, max_queue_size=8192, max_export_batch_size=1024)
    )
    return tracer_provider, meter_provider, logger_provider


def _metric_interval_ms() -> float:
    """cde-otel's default interval, or the standard variable's (which cde-otel honours too)."""
    return float(os.environ.get("OTEL_METRIC_EXPORT_INTERVAL") or 5000)


def _operation_attributes(name: str, function: str, instance: Any, args: tuple[Any, ...]) -> dict[str, Any]:
    attrs: dict[str, Any] = {"cde.operation": name, "code.function.name": function}
    for candidate in (instance, *args):
        if hasattr(candidate, "current_phase"):  # a Feature
            attrs["cde.feature.id"] = str(candidate.id)
            attrs["cde.project.id"] = str(candidate.project_id)
            attrs["cde.feature.phase"] = str(candidate.current_phase)
            break
        if hasattr(candidate, "features"):  # a Project
            attrs["cde.project.id"] = str(candidate.id)
            touched = _touched.get(attrs["cde.project.id"])
            if touched is not None and not hasattr(instance, "features"):  # a save of what changed
                attrs["cde.feature.id"] = touched
            break
    if name == "Feature.advance_phase" and args and isinstance(args[0], str):
        attrs["cde.feature.next_phase"] = args[0]
    elif name == "Project.start_feature" and args and isinstance(args[0], str):
        attrs["cde.prompt.length"] = len(args[0])
    correlation_id = _correlation_id.get()
    if correlation_id:
        attrs["cde.correlation_id"] = correlation_id
    return attrs


def _note_result(name: str, span: trace.Span, attrs: dict[str, Any], result: Any) -> None:
    if hasattr(result, "current_phase"):  # a Feature: the span and the request's span name it
        feature_id = str(result.id)
        span.set_attributes({"cde.feature.id": feature_id, "cde.feature.phase": str(result.current_phase)})
        _touched[str(result.project_id)] = feature_id
        request = _request_span.get()
        if request is not None and "cde.feature.id" not in request[1]:
            request[1]["cde.feature.id"] = feature_id
            request[0].set_attribute("cde.feature.id", feature_id)
    elif hasattr(result, "features") and "cde.project.id" not in attrs:  # a Project loaded
        span.set_attribute("cde.project.id", str(result.id))
    elif name.endswith(".advance_phase") and "cde.feature.id" in attrs:
        _touched[attrs["cde.project.id"]] = attrs["cde.feature.id"]
    elif name.endswith(".save") and "cde.feature.id" in attrs:
        _touched.pop(attrs["cde.project.id"], None)  # persisted: the next save names it only if changed again


def _traced(tracer: trace.Tracer, histogram: Any, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    function = f"{func.__module__}:{func.__qualname__}"

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_traced(self: Any, *args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            outcome = "ok"
            attrs = _operation_attributes(name, function, self, args)
            with tracer.start_as_current_span(name, attributes=attrs) as span:
                try:
                    result = await func(self, *args, **kwargs)
                    _note_result(name, span, attrs, result)
                    return result
                except Exception:
                    outcome = "error"
                    raise
                finally:
                    histogram.record(time.perf_counter() - start, {"cde.operation": name, "cde.outcome": outcome})

        return async_traced

    @functools.wraps(func)
    def traced(self: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        outcome = "ok"
        attrs = _operation_attributes(name, function, self, args)
        with tracer.start_as_current_span(name, attributes=attrs) as span:
            try:
                result = func(self, *args, **kwargs)
                _note_result(name, span, attrs, result)
                return result
            except Exception:
                outcome = "error"
                raise
            finally:
                histogram.record(time.perf_counter() - start, {"cde.operation": name, "cde.outcome": outcome})

    return traced


def _trace_domain(tracer: trace.Tracer, meter: Any) -> None:
    histogram = meter.create_histogram("cde.operation.duration", unit="s")
    for module_name, classes in DOMAIN_METHODS.items():
        module = importlib.import_module(module_name)
        for class_name, methods in classes.items():
            cls = getattr(module, class_name)
            for method in methods:
                if hasattr(cls, method):
                    setattr(cls, method, _traced(tracer, histogram, f"{class_name}.{method}", getattr(cls, method)))


def _trace_requests(tracer: trace.Tracer, meter: Any) -> None:
    # mcp 1.x (the fixture's venv): typed loosely, the dev venv has mcp 2.x.
    server_class: Any = importlib.import_module("mcp.server.lowlevel.server").Server
    histogram = meter.create_histogram("mcp.server.operation.duration", unit="s")
    handle = server_class._handle_request

    @functools.wraps(handle)
    async def traced(self: Any, message: Any, req: Any, *args: Any, **kwargs: Any) -> Any:
        method = str(getattr(req, "method", ""))
        tool = getattr(getattr(req, "params", None), "name", None)
        meta = getattr(message, "request_meta", None)
        parent = propagate.extract(getattr(meta, "model_extra", None) or {})
        attrs: dict[str, Any] = {"mcp.method.name": method, "network.transport": "pipe"}
        if message.request_id is not None:
            attrs["jsonrpc.request.id"] = str(message.request_id)
        if tool:
            attrs["gen_ai.tool.name"] = tool
            attrs["gen_ai.operation.name"] = "execute_tool"
            arguments = getattr(req.params, "arguments", None) or {}
            for key, attr in _WORK_ARGUMENTS.items():
                if isinstance(arguments.get(key), str):
                    attrs[attr] = arguments[key]
            if isinstance(arguments.get("user_prompt"), str):
                attrs["cde.prompt.length"] = len(arguments["user_prompt"])
        attrs.update(_client_attributes(getattr(args[0] if args else None, "client_params", None)))
        start = time.perf_counter()
        error = None
        name = f"{method} {tool}" if tool else method
        with tracer.start_as_current_span(name, parent, SpanKind.SERVER, attributes=attrs) as span:
            correlation_id = format(span.get_span_context().trace_id, "032x")
            span.set_attribute("cde.correlation_id", correlation_id)
            token = _correlation_id.set(correlation_id)
            span_token = _request_span.set((span, attrs))
            try:
                return await handle(self, message, req, *args, **kwargs)
            except Exception as exc:
                error = type(exc).__name__
                span.set_status(StatusCode.ERROR)
                raise
            finally:
                _request_span.reset(span_token)
                _correlation_id.reset(token)
                metric = {"mcp.method.name": method, "network.transport": "pipe"}
                if tool:
                    metric["gen_ai.tool.name"] = tool
                if error:
                    metric["error.type"] = error
                histogram.record(time.perf_counter() - start, metric)

    server_class._handle_request = traced
    _trace_initialize(tracer, histogram)


def _trace_initialize(tracer: trace.Tracer, histogram: Any) -> None:
    """mcp 1.x answers ``initialize`` in the session, not through ``_handle_request``."""
    session_class: Any = importlib.import_module("mcp.server.session").ServerSession
    received = session_class._received_request

    @functools.wraps(received)
    async def initialize_traced(self: Any, responder: Any) -> Any:
        method = str(getattr(getattr(responder.request, "root", None), "method", ""))
        if method != "initialize":
            return await received(self, responder)
        start = time.perf_counter()
        attrs: dict[str, Any] = {"mcp.method.name": method, "network.transport": "pipe"}
        metric = dict(attrs)
        attrs["jsonrpc.request.id"] = str(responder.request_id)
        attrs.update(_client_attributes(getattr(responder.request.root, "params", None)))
        with tracer.start_as_current_span(method, kind=SpanKind.SERVER, attributes=attrs) as span:
            span.set_attribute("cde.correlation_id", format(span.get_span_context().trace_id, "032x"))
            try:
                return await received(self, responder)
            finally:
                histogram.record(time.perf_counter() - start, metric)

    session_class._received_request = initialize_traced


def _client_attributes(params: Any) -> dict[str, str]:
    """The protocol version and the client's name and version, from ``initialize``'s parameters."""
    attrs = {}
    version = getattr(params, "protocolVersion", None)
    if isinstance(version, str):
        attrs["mcp.protocol.version"] = version
    info = getattr(params, "clientInfo", None)
    for key in ("name", "version"):
        value = getattr(info, key, None)
        if isinstance(value, str):
            attrs[f"cde.mcp.client.{key}"] = value
    return attrs


class _CorrelatedHandler(LoggingHandler):
    """The SDK's handler with the record attributes cde-otel's bridge gives: the correlation id, not ``code.*``."""

    @staticmethod
    def _get_attributes(record: logging.LogRecord) -> Any:
        attributes = {
            key: value
            for key, value in LoggingHandler._get_attributes(record).items()  # type: ignore[union-attr]
            if not key.startswith("code.")
        }
        correlation_id = _correlation_id.get()
        if correlation_id:
            attributes["correlation_id"] = correlation_id
        return attributes


def _log_through(logger_provider: LoggerProvider) -> None:
    """Every host record to the LoggingHandler, also after ``basicConfig(force=True)`` reset root."""
    handler = _CorrelatedHandler(logger_provider=logger_provider)
    root = logging.getLogger()
    root.addHandler(handler)
    importlib.import_module("fastmcp")  # configures its logger on import: ours is added after

    logging.getLogger("fastmcp").addHandler(handler)  # fastmcp's loggers do not propagate to root
    basic_config = logging.basicConfig

    @functools.wraps(basic_config)
    def basic_config_keeping_ours(**kwargs: Any) -> None:
        basic_config(**kwargs)
        if handler not in root.handlers:
            root.addHandler(handler)

    logging.basicConfig = basic_config_keeping_ours


def instrument() -> tuple[TracerProvider, MeterProvider, LoggerProvider]:
    """Everything but serving: the providers (returned), and the hand-written spans, metrics and records."""
    tracer_provider, meter_provider, logger_provider = _providers()
    trace.set_tracer_provider(tracer_provider)
    tracer = tracer_provider.get_tracer("floor")
    meter = meter_provider.get_meter("floor")
    _log_through(logger_provider)
    _trace_domain(tracer, meter)
    _trace_requests(tracer, meter)
    return tracer_provider, meter_provider, logger_provider


def main() -> None:
    instrument()
    serve()


if __name__ == "__main__":
    main()
