"""Spans from Jaeger's HTTP query API (``/api/traces``), as the same :class:`SpanRecord` the files give."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from cde_otel._exceptions import error_for
from cde_otel.cli._http import HttpStatusError, backend_error, get_json, request
from cde_otel.cli._spans import SpanRecord

#: Jaeger's limit counts traces; a tool call is one trace, so a few times N leaves room for filtering.
MAX_TRACES = 5000


def _spans_of(trace: Mapping[str, Any]) -> Iterator[SpanRecord]:
    processes = trace.get("processes") or {}
    for span in trace.get("spans") or ():
        yield SpanRecord.from_jaeger(span, processes.get(span.get("processID"), {}))


def search_spans(
    base_url: str,
    service: str,
    *,
    limit: int,
    start_us: int | None = None,
    min_duration_us: int | None = None,
    tags: Mapping[str, str] | None = None,
    operation: str | None = None,
) -> Iterator[SpanRecord]:
    """Every span of the traces Jaeger finds for ``service`` (newest traces first, at most ``limit``)."""
    params: dict[str, Any] = {"service": service, "limit": min(max(limit, 1), MAX_TRACES)}
    if start_us is not None:
        params["start"] = start_us
    if min_duration_us is not None:
        params["minDuration"] = f"{min_duration_us}us"
    if operation is not None:
        params["operation"] = operation
    if tags:
        params["tags"] = json.dumps(dict(tags))
    answer = get_json("Jaeger", base_url, "/api/traces", params)
    for trace in answer.get("data") or ():
        yield from _spans_of(trace)


def trace_spans(base_url: str, trace_id: str) -> list[SpanRecord]:
    """The spans of one trace; E405 when Jaeger does not know it."""
    url = f"{base_url.rstrip('/')}/api/traces/{trace_id}"
    try:
        answer = json.loads(request(url))
    except HttpStatusError as error:
        if error.status == 404:
            raise error_for("E405", trace_id=trace_id, source=f"Jaeger at {base_url}") from error
        raise backend_error("Jaeger", base_url, error) from error
    except OSError as error:
        raise backend_error("Jaeger", base_url, error) from error
    spans = [span for trace in answer.get("data") or () for span in _spans_of(trace)]
    if not spans:
        raise error_for("E405", trace_id=trace_id, source=f"Jaeger at {base_url}")
    return spans
