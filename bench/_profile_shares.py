"""Shares of a py-spy raw profile (``py-spy record -f raw``) by where the time went.

    .venv/bin/python bench/_profile_shares.py on.txt [floor.txt]

Idle samples (a thread waiting: ``select``, ``Condition.wait``...) are left out. Each other sample
is billed to the innermost frame that belongs somewhere: one of the categories below (cde-otel's
parts, the SDK), or the host (the tools, fastmcp, mcp, anyio, asyncio); frames of the standard
library (json, logging, threading...) belong to whoever called them. Also prints the top self
(leaf) frames.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

IDLE = (
    "EpollSelector.select",
    "Condition.wait",
    "Event.wait",
    "WorkerThread.run (anyio",
    "Thread.join",
    "select (selectors",
    "sleep (",
)
# py-spy shortens paths to the package's inner folders: "trace/__init__.py" is the SDK's tracer.
HOST = (
    "cde_orchestrator/",
    "orchestrator_server.py",
    "fastmcp/",
    "mcp/",
    "anyio/",
    "asyncio/",
    "pydantic",
    "jsonschema/",
    "referencing/",
    "starlette/",
    "runpy",
    # The stdlib's Logger.callHandlers, called by our hook: the host's own handlers run below it.
    "callHandlers (logging/__init__.py",
)
CATEGORIES = (  # (name, markers in a frame's file path or function), first match wins
    (
        "export (encoding, files/HTTP, batch workers)",
        (
            "proto_json/",
            "file/",
            "_encoder",
            "exporter",
            "common/_internal",
            "_shared_internal",
            "_export_status.py",
            "otlp/",
            "telemetry/_otlp_json",  # cde-otel's own writer for the embedded default
            "telemetry/_otlp_proto",  # ... and its OTLP/HTTP request encoding
            "telemetry/_otlp_http",
            "telemetry/_local_files.py",
            "telemetry/_rotating_lines.py",
        ),
    ),
    ("feature-state bookkeeping", ("_feature_state.py",)),
    ("scrubbing", ("redaction",)),
    ("MCP request hook", ("instrumentation/mcp/",)),
    ("domain wrapper begin/end", ("instrumentation/_wrapper.py", "instrumentation/_base.py", "_extractors.py")),
    ("record stamping + log bridge", ("cde_otel/logging/",)),
    ("other cde_otel", ("cde_otel/",)),
    ("floor's hand-written wrappers", ("_floor_server.py",)),
    (
        "SDK: spans, metrics, log records, context",
        (
            "trace/__init__.py",
            "metrics/_internal",
            "attributes/__init__.py",
            "_logs/_internal",
            "logging/handler.py",
            "context/",
            "baggage/",
            "propagat",
            "util/",
            "sdk/",
        ),
    ),
)


def _category(frame: str) -> str | None:
    for name, markers in CATEGORIES:
        if any(marker in frame for marker in markers):
            return name
    if any(marker in frame for marker in HOST):
        return "host (the tools, fastmcp, mcp, anyio, asyncio)"
    return None


def shares(path: Path) -> tuple[int, Counter[str], Counter[str]]:
    by_category: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        if any(marker in frames[-1] for marker in IDLE):
            continue
        n = int(count)
        total += n
        leaves[frames[-1]] += n
        for frame in reversed(frames):
            category = _category(frame)
            if category is not None:
                by_category[category] += n
                break
        else:
            by_category["other (standard library at the top of a thread)"] += n
    return total, by_category, leaves


def main() -> None:
    for arg in sys.argv[1:]:
        total, by_category, leaves = shares(Path(arg))
        print(f"== {arg}: {total} samples, idle left out")
        for name, n in by_category.most_common():
            print(f"  {100 * n / total:5.1f} %  {name}")
        print("  top self frames:")
        for frame, n in leaves.most_common(12):
            print(f"  {100 * n / total:5.1f} %  {frame}")


if __name__ == "__main__":
    main()
