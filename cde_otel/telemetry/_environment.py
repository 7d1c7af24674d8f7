"""The standard ``OTEL_*`` variables cde-otel reads itself (the exporters read their own):
exporter choice and protocol per signal, endpoints, the metric interval, the log batch sizes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from cde_otel._exceptions import CDESystemError
from cde_otel.semconv import SIGNALS
from cde_otel.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanLimits

#: Span attribute values are cut at this many characters unless OTEL_(SPAN_)ATTRIBUTE_VALUE_LENGTH_LIMIT
#: says otherwise (the SDK's default is no limit: one 10 MB argument made a 10 MB span).
SPAN_ATTRIBUTE_LENGTH = 4096
#: Event and link attribute values (exception stack traces among them): a larger default cut.
EVENT_ATTRIBUTE_LENGTH = 16384


def exporter_choice(signal: str, environ: Mapping[str, str]) -> str:
    raw = environ.get(f"OTEL_{signal.upper()}_EXPORTER", "otlp").strip().lower() or "otlp"
    choice = raw.split(",")[0].strip()
    if choice not in ("otlp", "console", "none"):
        raise CDESystemError(
            f"OTEL_{signal.upper()}_EXPORTER={raw!r} is not supported by cde-otel",
            "E903",
            {"setting": f"OTEL_{signal.upper()}_EXPORTER", "value": raw, "expected": "otlp|console|none"},
        )
    return choice


def otlp_endpoint_configured(signal: str, environ: Mapping[str, str]) -> bool:
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    )


def protocol(signal: str, environ: Mapping[str, str]) -> str:
    return (
        environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()


def metric_export_interval_ms(settings: Settings, environ: Mapping[str, str]) -> float:
    raw = environ.get("OTEL_METRIC_EXPORT_INTERVAL", "").strip()
    if not raw:
        return float(settings.metric_export_interval_ms)
    try:
        interval = float(raw)
    except ValueError:
        interval = 0.0
    if interval <= 0:
        raise CDESystemError(
            f"OTEL_METRIC_EXPORT_INTERVAL={raw!r} is not a positive number of milliseconds",
            "E903",
            {"setting": "OTEL_METRIC_EXPORT_INTERVAL", "value": raw, "expected": "milliseconds > 0"},
        )
    return interval


def otlp_endpoints(described: Mapping[str, str], environ: Mapping[str, str]) -> tuple[tuple[str, int], ...]:
    """(host, port) of the OTLP endpoints the exporters send to, for the shutdown's reachability check."""
    from urllib.parse import urlsplit

    found: set[tuple[str, int]] = set()
    for signal in SIGNALS:
        if not described.get(signal, "").startswith("otlp"):
            continue
        specific = environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
        raw = (specific or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")).strip()
        parts = urlsplit(raw if "://" in raw else f"http://{raw}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            continue
        if parts.hostname:
            found.add((parts.hostname, port))
    return tuple(sorted(found))


def destination(described: Mapping[str, str], environ: Mapping[str, str], local_dir: Path | None) -> str:
    endpoint = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if endpoint:
        return endpoint
    if local_dir is not None:
        return str(local_dir)
    return ", ".join(sorted({where for where in described.values() if where != "none"}))


def log_batch_sizes(environ: Mapping[str, str]) -> tuple[int | None, int | None]:
    """(max_queue_size, max_export_batch_size) for logs: room for bursts of the host's own records.

    The host's stdlib and structlog records all become log records, often several per operation,
    so the SDK's defaults (2048/512, the same as for spans) would drop logs first under load.
    The OTEL_BLRP_* variables win.
    """
    queue = None if environ.get("OTEL_BLRP_MAX_QUEUE_SIZE") else 8192
    batch = None if environ.get("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE") else 1024
    return queue, batch


def span_limits(environ: Mapping[str, str]) -> SpanLimits:
    """The SDK's limits with attribute value lengths bounded by default; the standard variables win."""
    from opentelemetry.sdk.trace import SpanLimits

    general = environ.get("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT")
    specific = environ.get("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT")
    return SpanLimits(
        max_attribute_length=None if general else EVENT_ATTRIBUTE_LENGTH,
        max_span_attribute_length=None if general or specific else SPAN_ATTRIBUTE_LENGTH,
    )
