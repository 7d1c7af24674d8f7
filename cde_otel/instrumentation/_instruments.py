"""Instruments shared by the CDE and MCP instrumentors."""

from __future__ import annotations

from opentelemetry import metrics
from opentelemetry.metrics import Counter, MeterProvider

from cde_otel._version import __version__
from cde_otel.semconv import METRIC_ERRORS, SCHEMA_URL, SCOPE_NAME


def errors_counter(meter_provider: MeterProvider | None = None) -> Counter:
    """``cde.errors``, always under the ``cde_otel`` scope.

    Failed operations (:class:`~cde_otel.instrumentation.CDEInstrumentor`) and failed MCP requests
    (:class:`~cde_otel.instrumentation.mcp.MCPInstrumentor`) are one metric family, told apart by
    ``cde.operation``: created twice with the same name, unit and description under one scope,
    the SDK hands back the same instrument (one ``cde_errors_total`` in Prometheus, not two
    series differing only by ``otel_scope_name``).
    """
    meter = metrics.get_meter(SCOPE_NAME, __version__, meter_provider=meter_provider, schema_url=SCHEMA_URL)
    return meter.create_counter(
        METRIC_ERRORS, unit="{error}", description="CDE operations and MCP requests that failed, by error type."
    )
