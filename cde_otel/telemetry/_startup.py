"""The one start-up line: that telemetry is on, where each signal goes, and what is instrumented.

::

    cde-otel: telemetry on for service cde-orchestrator: traces, metrics and logs -> local OTLP-JSON
    files in /home/ann/.local/state/cde-otel/cde-orchestrator; instrumented: CDE operations, MCP
    requests, thread context (CDE_OTEL_STARTUP_LINE=false hides this line)

(one line in reality). ``configure()`` says it once, at INFO on the ``cde_otel.telemetry`` logger
when the host's logging would show that, else as one line on stderr -- never on stdout, which an
MCP server's protocol owns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cde_otel.semconv import SIGNALS as _SIGNALS
from cde_otel.telemetry._exporters import APPLICATION_PROVIDER
from cde_otel.telemetry._pipeline import Pipeline
from cde_otel.telemetry._providers import disabled_instrumentations, is_active, launcher_active, launcher_instruments

#: The instrumentations configure() may turn on, by entry point name, as the line names them.
INSTRUMENTATIONS = {"cde": "CDE operations", "cde_mcp": "MCP requests", "threading": "thread context"}


def startup_line(pipeline: Pipeline, environ: Mapping[str, str]) -> str:
    """The line for this process, once ``configure()`` instrumented (or left it to the launcher)."""
    from cde_otel.instrumentation import CDEInstrumentor
    from cde_otel.instrumentation.mcp import MCPInstrumentor
    from cde_otel.telemetry._thread_context import ThreadContextInstrumentor

    by_launcher = launcher_active()
    off = disabled_instrumentations(environ)
    instrumentors = {"cde": CDEInstrumentor(), "cde_mcp": MCPInstrumentor(), "threading": ThreadContextInstrumentor()}
    on = [
        name
        for name, found in instrumentors.items()
        if name not in off and (launcher_instruments(name) or is_active(found))
    ]
    return describe(pipeline, environ, on, by_launcher=by_launcher)


def describe(pipeline: Pipeline, environ: Mapping[str, str], instrumented: Iterable[str], *, by_launcher: bool) -> str:
    """The line, without the ``cde-otel:`` prefix the host-facing writer adds."""
    if pipeline.app_signals == frozenset(_SIGNALS):
        where = "using the application's providers (traces, metrics, logs)"
    else:
        groups: dict[str, list[str]] = {}
        for signal in _SIGNALS:
            groups.setdefault(_destination(signal, pipeline, environ), []).append(signal)
        where = "; ".join(f"{_listed(signals)} -> {destination}" for destination, signals in groups.items())
    names = [INSTRUMENTATIONS[name] for name in INSTRUMENTATIONS if name in set(instrumented)]
    what = ", ".join(names) or "nothing"
    if by_launcher and names:
        what += " (by opentelemetry-instrument)"
    return (
        f"telemetry on for service {pipeline.service_name}: {where}; instrumented: {what} "
        "(CDE_OTEL_STARTUP_LINE=false hides this line)"
    )


def _destination(signal: str, pipeline: Pipeline, environ: Mapping[str, str]) -> str:
    described = pipeline.exporters.get(signal, "none")
    if described == APPLICATION_PROVIDER:
        return "the application's provider"
    if described == "none":
        return "off"
    if described == "console":
        return "the console (stderr)"
    if described.startswith("otlp"):
        protocol = described.partition("(")[2].rstrip(")") or "http/protobuf"
        endpoint = environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT") or environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT", ""
        )
        return f"OTLP {protocol} to {endpoint.strip()}"
    return f"local OTLP-JSON files in {pipeline.local_dir}"


def _listed(signals: list[str]) -> str:
    return signals[0] if len(signals) == 1 else ", ".join(signals[:-1]) + " and " + signals[-1]
