"""The exporter of each signal: OTLP (http/protobuf or gRPC), console, none, or the embedded default's
local files when ``otlp`` is chosen but no endpoint is configured."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opentelemetry.sdk._logs import export as sdk_log_export
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from cde_otel._exceptions import CDESystemError
from cde_otel.semconv import SIGNALS
from cde_otel.settings import Settings
from cde_otel.telemetry._environment import exporter_choice, otlp_endpoint_configured, protocol
from cde_otel.telemetry._resource import DEFAULT_SERVICE_NAME, configured_service_name

APPLICATION_PROVIDER = "the application's provider"


def _otlp_exporter(signal: str, environ: Mapping[str, str]) -> Any:
    chosen = protocol(signal, environ)
    if chosen == "grpc":
        _require_grpc_extra()
        if signal == "traces":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            return OTLPSpanExporter()
        if signal == "metrics":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

            return OTLPMetricExporter()
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

        return OTLPLogExporter()
    if chosen != "http/protobuf":
        raise CDESystemError(
            f"OTLP protocol {chosen!r} is not supported",
            "E903",
            {"setting": "OTEL_EXPORTER_OTLP_PROTOCOL", "value": chosen, "expected": "grpc|http/protobuf"},
        )
    if signal == "traces":
        from cde_otel.telemetry._otlp_http import OTLPSpanExporter as HttpSpanExporter

        return HttpSpanExporter()
    if signal == "metrics":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter

        return HttpMetricExporter()
    from cde_otel.telemetry._otlp_http import OTLPLogExporter as HttpLogExporter

    return HttpLogExporter()


def _require_grpc_extra() -> None:
    """The gRPC exporter is the ``cde-otel[grpc]`` extra: say so with E903 instead of a bare ImportError."""
    import importlib.util

    if importlib.util.find_spec("opentelemetry.exporter.otlp.proto.grpc") is None:
        raise CDESystemError(
            "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs the gRPC exporter: pip install 'cde-otel[grpc]'",
            "E903",
            {
                "setting": "OTEL_EXPORTER_OTLP_PROTOCOL",
                "value": "grpc",
                "expected": "protocol without the gRPC extra (pip install 'cde-otel[grpc]', or use http/protobuf)",
            },
        )


def _local_exporter(signal: str, directory: Path, max_mb: float) -> Any:
    from cde_otel.telemetry._local_files import local_exporter

    return local_exporter(signal, directory, max_mb)


def _console_exporter(signal: str) -> Any:
    # Console output goes to stderr so it never mixes with an application's own stdout.
    if signal == "traces":
        return ConsoleSpanExporter(out=sys.stderr)
    if signal == "metrics":
        return ConsoleMetricExporter(out=sys.stderr)
    # ConsoleLogRecordExporter is the SDK's new name; the old one warns (DeprecationWarning) when built.
    console_logs = getattr(sdk_log_export, "ConsoleLogRecordExporter", None) or sdk_log_export.ConsoleLogExporter
    return console_logs(out=sys.stderr)


def default_local_dir(service_name: str = DEFAULT_SERVICE_NAME) -> Path:
    """Where the embedded default keeps its files: ``cde-otel/<service.name>`` in the user's state
    directory (``$XDG_STATE_HOME``, else ``~/.local/state``, on Linux)."""
    from platformdirs import user_state_path

    return user_state_path("cde-otel", appauthor=False) / _directory_name(service_name)


def _directory_name(service_name: str) -> str:
    """A service name as one safe path component (no separators, no leading dots)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", service_name).lstrip(".") or DEFAULT_SERVICE_NAME


def local_telemetry_dir(settings: Settings, service: str | None = None) -> Path:
    """``CDE_OTEL_LOCAL_DIR`` when set (``~`` expanded, relative to the working directory), else the
    default for ``service`` (None: the service name the ``OTEL_*`` variables give)."""
    if settings.local_dir:
        return Path(settings.local_dir).expanduser().resolve()
    return default_local_dir(service if service is not None else configured_service_name(os.environ))


def select_exporters(
    settings: Settings,
    environ: Mapping[str, str],
    service: str = DEFAULT_SERVICE_NAME,
    app_signals: frozenset[str] = frozenset(),
) -> tuple[dict[str, Any], dict[str, str], Path | None]:
    """The exporter per signal (None for ``none``, and for the signals in ``app_signals``: the
    application's providers export those), a description of each, and the local dir if used."""
    exporters: dict[str, Any] = {}
    described: dict[str, str] = {}
    kept_in: Path | None = None
    for signal in SIGNALS:
        if signal in app_signals:  # its OTEL_<SIGNAL>_EXPORTER is the application's business
            exporters[signal], described[signal] = None, APPLICATION_PROVIDER
            continue
        choice = exporter_choice(signal, environ)
        if choice == "none":
            exporters[signal], described[signal] = None, "none"
        elif choice == "console":
            exporters[signal], described[signal] = _console_exporter(signal), "console"
        elif otlp_endpoint_configured(signal, environ):
            exporters[signal] = _otlp_exporter(signal, environ)
            described[signal] = f"otlp ({protocol(signal, environ)})"
        else:
            directory = local_telemetry_dir(settings, service)
            exporters[signal] = _local_exporter(signal, directory, settings.local_max_mb)
            described[signal] = f"local OTLP-JSON file {directory / (signal + '.jsonl')}"
            kept_in = directory
    return exporters, described, kept_in
