"""``cde-otel demo``: a realistic workload with telemetry on, and what it produced.

With no OTLP endpoint configured the telemetry stays local (OTLP-JSON files a collector can
read back) and the terminal shows the span tree of one feature's workflow and a P50/P95/P99
table per operation. With ``OTEL_EXPORTER_OTLP_ENDPOINT`` set it ships to the collector too.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Annotated

import typer
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.tree import Tree

from cde_otel import telemetry
from cde_otel.cli._console import console
from cde_otel.cli._error_handling import handle_errors
from cde_otel.cli._span_tree import add_span_tree
from cde_otel.cli._spans import SpanRecord
from cde_otel.demo_workload import WorkloadResult, run_workload
from cde_otel.health import operation_stats
from cde_otel.semconv import (
    ATTR_FEATURE_ID,
    METRIC_OPERATION_DURATION,
)
from cde_otel.settings import Settings, load_settings
from cde_otel.telemetry import local_telemetry_dir

app = typer.Typer(help="Run a realistic workload with telemetry on and show what it produced.")


@app.callback(invoke_without_command=True)
def demo(
    features: Annotated[int, typer.Option(min=1, max=10_000, help="Features to drive through the phases.")] = 12,
    project: Annotated[
        Path | None, typer.Option(help="Project directory, created if missing (default: a fresh temporary one).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the workload's random choices.")] = 7,
) -> None:
    with handle_errors():
        settings = _with_log_file(load_settings())
        pipeline = telemetry.configure(settings)
        log_file = settings.log_file if pipeline is not None else None
        captured = InMemorySpanExporter()
        project_dir = project or Path(tempfile.mkdtemp(prefix="cde-otel-demo-"))
        project_dir.mkdir(parents=True, exist_ok=True)
        if pipeline is not None and isinstance(pipeline.tracer_provider, TracerProvider):
            pipeline.tracer_provider.add_span_processor(SimpleSpanProcessor(captured))
        console.print(f"[bold]cde-otel demo[/]: {features} features in [cyan]{project_dir}[/]")
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        ) as progress:
            task = progress.add_task("features", total=features)
            result = run_workload(project_dir, features, seed=seed, on_feature_done=lambda _: progress.advance(task))
        _report(result, pipeline, captured)
        if log_file is not None:
            console.print(f"[dim]log lines[/] → {log_file}")
        telemetry.shutdown()


def _with_log_file(settings: Settings) -> Settings:
    """The terminal is the demo's own: operation lines go to a file, by default beside the local
    telemetry files in the user's state directory (never in the project)."""
    if settings.log_file:
        return settings
    return settings.replace(log_file=str(local_telemetry_dir(settings) / "cde-otel.log"))


def _report(result: WorkloadResult, pipeline: telemetry.Pipeline | None, captured: InMemorySpanExporter) -> None:
    console.print(
        f"completed {len(result.completed)}, failed {len(result.failed)}, "
        f"refused as expected: {dict(sorted(result.refused.items())) or 'none'}"
    )
    if pipeline is None:
        console.print("[yellow]Telemetry is disabled (OTEL_SDK_DISABLED=true): nothing was recorded.[/]")
        return
    spans = list(captured.get_finished_spans())
    shown = result.completed or result.failed
    if shown and spans:
        feature_id = shown[0]
        console.print(_feature_tree(feature_id, spans))
    if pipeline.health_reader is not None:
        console.print(_latency_table(pipeline.health_reader))
    local = [signal for signal, where in pipeline.exporters.items() if where.startswith("local OTLP-JSON")]
    if local:
        files = ", ".join(f"{signal}.jsonl" for signal in local)
        console.print(
            f"[dim]kept locally[/] → {pipeline.local_dir} ({files}; your state directory, not the project: "
            "set OTEL_EXPORTER_OTLP_ENDPOINT to ship to a collector)"
        )
    for signal, where in pipeline.exporters.items():
        if signal not in local:
            console.print(f"[dim]{signal}[/] → {where}")


def _feature_tree(feature_id: str, spans: list[ReadableSpan]) -> Tree:
    """Every trace that touched the feature, as a tree of spans with durations."""
    records = [SpanRecord.from_readable(span) for span in spans]
    traces = {s.trace_id for s in records if s.attributes.get(ATTR_FEATURE_ID) == feature_id}
    tree = Tree(f"[bold]workflow of feature {feature_id}[/] ({len(traces)} traces, tag {ATTR_FEATURE_ID})")
    by_trace: dict[str, list[SpanRecord]] = defaultdict(list)
    for span in records:
        if span.trace_id in traces:
            by_trace[span.trace_id].append(span)
    for trace_spans in sorted(by_trace.values(), key=lambda group: min(s.start_ns for s in group)):
        add_span_tree(tree, trace_spans)
    return tree


def _latency_table(reader: MetricReader) -> Table:
    table = Table(title=f"Latency per operation (from the {METRIC_OPERATION_DURATION} histogram)")
    for column in ("operation", "count", "errors", "P50 ms", "P95 ms", "P99 ms"):
        table.add_column(column, justify="left" if column == "operation" else "right", overflow="fold")
    for operation, stats in sorted(operation_stats(reader).items()):
        table.add_row(
            operation, str(stats.count), str(stats.errors), *(_ms(v) for v in (stats.p50, stats.p95, stats.p99))
        )
    return table


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.3f}"
