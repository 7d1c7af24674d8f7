"""``cde-otel traces``: the last tool calls and operations, and ``traces show`` one of them as a tree.

A row is an *entry* span: the root of its trace, or a SERVER span (a request that came from
elsewhere, e.g. an MCP ``tools/call`` under a client's trace context). Read from the embedded
default's local files (streamed: memory holds the N rows kept, never a file) or, with
``--jaeger URL``, from Jaeger's query API, through the same filters.
"""

from __future__ import annotations

import heapq
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.tree import Tree

from cde_otel._exceptions import error_for
from cde_otel.cli import _jaeger
from cde_otel.cli._console import console
from cde_otel.cli._error_handling import handle_errors
from cde_otel.cli._local_options import (
    DirOption,
    JsonOption,
    ServiceOption,
    SinceOption,
    local_time,
    parse_duration_s,
    print_json,
    resolve_dir,
    service_name,
    since_unix_ns,
)
from cde_otel.cli._otlp_files import ReadStats, iter_requests
from cde_otel.cli._span_tree import add_span_tree, span_tree_dicts
from cde_otel.cli._spans import SpanRecord, spans_of_request
from cde_otel.semconv import ATTR_FEATURE_ID, ATTR_GEN_AI_TOOL_NAME, ATTR_OPERATION

app = typer.Typer(help="The last tool calls and operations (local files or Jaeger); `show` draws one trace.")

JaegerOption = Annotated[
    str | None, typer.Option("--jaeger", help="Read from Jaeger's query API at this URL instead of the local files.")
]
#: A trace may not hold more spans than this in memory (a runaway trace is cut, and said so).
MAX_TRACE_SPANS = 100_000
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True, slots=True)
class EntryFilter:
    errors: bool = False
    tool: str | None = None
    feature: str | None = None
    since_ns: int | None = None
    slower_than_ns: int | None = None  # whole nanoseconds, as span times are: no rounding at the edge

    def accepts(self, span: SpanRecord) -> bool:
        if not span.is_entry:
            return False
        if self.errors and span.status != "error" and span.error_code is None:
            return False
        if self.tool is not None and self.tool not in _names(span):
            return False
        if self.feature is not None and str(span.attributes.get(ATTR_FEATURE_ID)) != self.feature:
            return False
        if self.since_ns is not None and span.start_ns < self.since_ns:
            return False
        return self.slower_than_ns is None or span.end_ns - span.start_ns >= self.slower_than_ns


def _names(span: SpanRecord) -> set[str]:
    """What ``--tool`` matches: the MCP tool name, the operation, the span name."""
    return {span.name, str(span.attributes.get(ATTR_GEN_AI_TOOL_NAME)), str(span.attributes.get(ATTR_OPERATION))}


def last_entries(spans: Iterable[SpanRecord], keep: EntryFilter, n: int) -> list[SpanRecord]:
    """The ``n`` latest accepted entry spans, newest first, in O(n) memory."""
    heap: list[tuple[int, str, SpanRecord]] = []
    for span in spans:
        if keep.accepts(span):
            item = (span.start_ns, span.span_id, span)
            if len(heap) < n:
                heapq.heappush(heap, item)
            elif item[:2] > heap[0][:2]:
                heapq.heapreplace(heap, item)
    return [span for _, _, span in sorted(heap, key=lambda item: item[:2], reverse=True)]


def local_spans(directory: Path, stats: ReadStats) -> Iterator[SpanRecord]:
    for request in iter_requests(directory, "traces", stats):
        yield from spans_of_request(request)


@app.callback(invoke_without_command=True)
def traces(
    ctx: typer.Context,
    *,
    n: Annotated[int, typer.Option("-n", "--last", min=1, max=100_000, help="How many rows (newest first).")] = 20,
    errors: Annotated[bool, typer.Option("--errors", help="Only failed calls.")] = False,
    tool: Annotated[str | None, typer.Option("--tool", help="Only this tool (or operation, or span name).")] = None,
    feature: Annotated[str | None, typer.Option("--feature", help="Only calls about this feature id.")] = None,
    since: SinceOption = None,
    slower_than: Annotated[
        str | None, typer.Option("--slower-than", help="Only calls at least this long: 250ms, 1.5s (bare number: ms).")
    ] = None,
    directory: DirOption = None,
    service: ServiceOption = None,
    jaeger: JaegerOption = None,
    as_json: JsonOption = False,
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    with handle_errors():
        slower_ns = None if slower_than is None else round(parse_duration_s(slower_than, "--slower-than", "ms") * 1e9)
        keep = EntryFilter(errors, tool, feature, since_unix_ns(since), slower_ns)
        stats = ReadStats()
        if jaeger is not None:
            source = f"Jaeger at {jaeger} (service {service_name(service)})"
            spans: Iterable[SpanRecord] = _jaeger_entries(jaeger, service_name(service), keep, n)
        else:
            where = resolve_dir(directory, service)
            source = str(where)
            spans = local_spans(where, stats)
        rows = last_entries(spans, keep, n)
        if as_json:
            print_json({"source": source, "spans": [row.as_dict() for row in rows], "read": stats.as_dict()})
            return
        console.print(_table(rows, source, stats))


def _jaeger_entries(url: str, service: str, keep: EntryFilter, n: int) -> list[SpanRecord]:
    """Jaeger's newest matching traces; ``--tool`` is tried as a tool name, then as a span name, then
    as anything else an entry's names hold (an operation), each filtered here as for the files."""
    tags = {ATTR_FEATURE_ID: keep.feature} if keep.feature is not None else {}
    # Jaeger v2 keeps a span's status out of its searchable tags: failures are picked out here, among
    # as many traces as Jaeger returns.
    limit = _jaeger.MAX_TRACES if keep.errors else n * 5
    start_us = None if keep.since_ns is None else keep.since_ns // 1000
    min_us = None if keep.slower_than_ns is None else keep.slower_than_ns // 1000

    def search(extra: dict[str, str], operation: str | None = None) -> list[SpanRecord]:
        return list(
            _jaeger.search_spans(
                url, service, limit=limit, start_us=start_us, min_duration_us=min_us,
                tags={**tags, **extra}, operation=operation,
            )
        )  # fmt: skip

    if keep.tool is None:
        return search({})
    spans = search({ATTR_GEN_AI_TOOL_NAME: keep.tool})
    if not any(keep.accepts(span) for span in spans):
        spans = search({}, keep.tool)
    if not any(keep.accepts(span) for span in spans):
        spans = search({ATTR_OPERATION: keep.tool})
    return spans


def _table(rows: list[SpanRecord], source: str, stats: ReadStats) -> Table:
    caption = f"from {source}"
    if stats.files:
        caption += f" ({len(stats.files)} files, {stats.lines} lines"
        caption += f", {stats.skipped} incomplete skipped)" if stats.skipped else ")"
    table = Table(title=f"Last {len(rows)} tool calls and operations", caption=caption)
    for column in ("time", "name", "ms", "status", "error", "feature", "trace"):
        table.add_column(
            column,
            justify="right" if column == "ms" else "left",
            no_wrap=column in {"time", "ms", "status", "error"},
            overflow="ellipsis" if column == "feature" else "fold",
            max_width=12 if column == "feature" else None,
        )
    today = local_time(time.time_ns())[:10]
    for span in rows:
        status = "[red]error[/]" if span.status == "error" else span.status
        table.add_row(
            _short_time(span.start_ns, today),
            span.name,
            f"{span.duration_ms:.2f}",
            status,
            span.error_code or "",
            str(span.attributes.get(ATTR_FEATURE_ID, "")),
            span.trace_id,
        )
    return table


def _short_time(unix_ns: int, today: str) -> str:
    """``HH:MM:SS.mmm`` today, ``MM-DD HH:MM:SS`` before."""
    full = local_time(unix_ns)
    return full[11:] if full.startswith(today) else full[5:19]


@app.command("show")
def show(
    trace_id: Annotated[str, typer.Argument(help="The trace id (32 hex digits), from the trace column.")],
    directory: DirOption = None,
    service: ServiceOption = None,
    jaeger: JaegerOption = None,
    as_json: JsonOption = False,
) -> None:
    """Draw one trace as a tree: every span with its duration, phase transitions and error codes."""
    with handle_errors():
        wanted = normalize_trace_id(trace_id)
        stats = ReadStats()
        if jaeger is not None:
            source = f"Jaeger at {jaeger}"
            spans = _jaeger.trace_spans(jaeger, wanted)
        else:
            where = resolve_dir(directory, service)
            source = str(where)
            spans = find_trace(local_spans(where, stats), wanted)
            if not spans:
                raise error_for("E405", trace_id=wanted, source=f"the local files in {where}")
        if as_json:
            print_json({"source": source, "trace_id": wanted, "spans": span_tree_dicts(spans), "read": stats.as_dict()})
            return
        console.print(trace_tree(wanted, spans))


def normalize_trace_id(text: str) -> str:
    wanted = text.strip().lower().replace("-", "")
    if not _TRACE_ID.match(wanted):
        reason = f"{len(wanted)} characters" if re.fullmatch(r"[0-9a-f]*", wanted) else "not hexadecimal"
        raise error_for("E404", trace_id=text, reason=f"{reason}, 32 hexadecimal digits expected")
    if wanted == "0" * 32:
        raise error_for("E404", trace_id=text, reason="the all-zero id is invalid")
    return wanted


def find_trace(spans: Iterable[SpanRecord], trace_id: str) -> list[SpanRecord]:
    found: dict[str, SpanRecord] = {}
    for span in spans:
        if span.trace_id == trace_id and len(found) < MAX_TRACE_SPANS:
            found.setdefault(span.span_id, span)  # a batch written twice counts once
    return list(found.values())


def trace_tree(trace_id: str, spans: list[SpanRecord]) -> Tree:
    first, last = min(s.start_ns for s in spans), max(s.end_ns for s in spans)
    services = sorted({s.service for s in spans if s.service})
    title = (
        f"[bold]trace {trace_id}[/] {local_time(first)}, {len(spans)} spans, {(last - first) / 1e6:.2f} ms"
        f" [dim]{', '.join(services)}[/]"
    )
    return add_span_tree(Tree(title), spans)
