"""The start-up line's words, for each kind of destination (the routes are tested in real processes
in test_telemetry_app_providers.py)."""

from __future__ import annotations

from pathlib import Path

from cde_otel.telemetry._pipeline import APPLICATION_PROVIDER, Pipeline
from cde_otel.telemetry._startup import describe

ALL = ("cde", "cde_mcp", "threading")


def _pipeline(exporters: dict[str, str], **fields: object) -> Pipeline:
    return Pipeline(None, None, None, None, exporters, **fields)  # type: ignore[arg-type]


def test_one_endpoint_for_every_signal() -> None:
    pipeline = _pipeline(dict.fromkeys(("traces", "metrics", "logs"), "otlp (http/protobuf)"), service_name="svc")
    line = describe(pipeline, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, ALL, by_launcher=False)
    assert line == (
        "telemetry on for service svc: traces, metrics and logs -> OTLP http/protobuf to http://127.0.0.1:4318; "
        "instrumented: CDE operations, MCP requests, thread context (CDE_OTEL_STARTUP_LINE=false hides this line)"
    )


def test_signals_grouped_by_where_they_go() -> None:
    pipeline = _pipeline(
        {"traces": "otlp (grpc)", "metrics": "none", "logs": "console"}, service_name="svc", local_dir=Path("/x")
    )
    env = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4317"}
    line = describe(pipeline, env, ["cde"], by_launcher=False)
    assert "traces -> OTLP grpc to http://127.0.0.1:4317; metrics -> off; logs -> the console (stderr);" in line
    assert "instrumented: CDE operations (" in line


def test_the_applications_providers_and_the_launcher() -> None:
    signals = frozenset({"traces", "metrics", "logs"})
    pipeline = _pipeline(dict.fromkeys(signals, APPLICATION_PROVIDER), service_name="app", app_signals=signals)
    line = describe(pipeline, {}, ["cde", "cde_mcp"], by_launcher=True)
    assert line.startswith("telemetry on for service app: using the application's providers (traces, metrics, logs);")
    assert "instrumented: CDE operations, MCP requests (by opentelemetry-instrument)" in line


def test_nothing_instrumented_is_said_too() -> None:
    line = describe(_pipeline(dict.fromkeys(("traces", "metrics", "logs"), "none")), {}, [], by_launcher=False)
    assert "traces, metrics and logs -> off; instrumented: nothing" in line
