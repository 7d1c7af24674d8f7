"""``cde-otel traces`` and ``traces show`` over the local files of real MCP sessions (rotated between them).

The expectations come from the files themselves, read by the suite's own OTLP-JSON reader
(``otlp_json_spans``), never from the command's code.
"""

from __future__ import annotations

import json
import os
import shutil
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cde_otel.cli import app
from cde_otel.cli._otlp_files import ReadStats
from cde_otel.cli.traces import EntryFilter, last_entries, local_spans
from cde_otel.semconv import ATTR_FEATURE_ID, ATTR_GEN_AI_TOOL_NAME

SpanReader = Callable[[Path], Iterator[dict[str, Any]]]
SERVER = 2


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def _json(*args: str) -> dict[str, Any]:
    result = _cli(*args, "--json")
    assert result.exit_code == 0, result.output
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


@pytest.fixture(scope="module")
def spans(recorded_mcp_sessions: Any, otlp_json_spans: SpanReader) -> list[dict[str, Any]]:
    local = recorded_mcp_sessions.local
    return [s for path in sorted(local.glob("traces*.jsonl")) for s in otlp_json_spans(path)]


def _entries(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Roots and SERVER spans, newest first: what the command promises to list."""
    found = [s for s in spans if not s.get("parentSpanId") or s["kind"] == SERVER]
    return sorted(found, key=lambda s: int(s["startTimeUnixNano"]), reverse=True)


def test_lists_every_tool_call_newest_first_across_the_rotated_files(
    recorded_mcp_sessions: Any, spans: list[dict[str, Any]]
) -> None:
    local = recorded_mcp_sessions.local
    listed = _json("traces", "--dir", str(local), "-n", "100000")
    expected = _entries(spans)
    assert [row["span_id"] for row in listed["spans"]] == [s["spanId"] for s in expected]
    tools = [row for row in listed["spans"] if row["attributes"].get(ATTR_GEN_AI_TOOL_NAME)]
    assert len(tools) == sum(recorded_mcp_sessions.calls.values())
    assert {Path(f).name for f in listed["read"]["files"]} == {"traces.jsonl", *recorded_mcp_sessions.rotated[:1]}
    assert Path(listed["read"]["files"][0]).name == recorded_mcp_sessions.rotated[0]  # oldest first
    assert listed["read"]["skipped_lines"] == 0


def test_n_keeps_only_the_latest(recorded_mcp_sessions: Any, spans: list[dict[str, Any]]) -> None:
    listed = _json("traces", "--dir", str(recorded_mcp_sessions.local), "-n", "3")
    assert [row["trace_id"] for row in listed["spans"]] == [s["traceId"] for s in _entries(spans)[:3]]


def test_filters(recorded_mcp_sessions: Any, spans: list[dict[str, Any]]) -> None:
    local = str(recorded_mcp_sessions.local)
    failed = _json("traces", "--dir", local, "--errors")["spans"]
    assert [(row["name"], row["error_code"], row["status"]) for row in failed] == [
        ("tools/call cde_submitWork", "E104", "error")
    ] * 2  # one unknown feature per session
    started = _json("traces", "--dir", local, "--tool", "cde_startFeature", "-n", "1000")["spans"]
    assert len(started) == recorded_mcp_sessions.calls["cde_startFeature"]
    feature = recorded_mcp_sessions.feature_ids[3]
    of_feature = _json("traces", "--dir", local, "--feature", feature)["spans"]
    assert sorted(row["name"] for row in of_feature) == [
        "tools/call cde_startFeature", "tools/call cde_submitWork", "tools/call cde_submitWork"
    ]  # fmt: skip
    assert {row["attributes"][ATTR_FEATURE_ID] for row in of_feature} == {feature}

    durations = sorted((int(s["endTimeUnixNano"]) - int(s["startTimeUnixNano"])) / 1e6 for s in _entries(spans))
    threshold = durations[len(durations) // 2]
    slow = _json("traces", "--dir", local, "--slower-than", f"{threshold}ms", "-n", "1000")["spans"]
    assert len(slow) == sum(1 for d in durations if d >= threshold)
    assert min(row["duration_ms"] for row in slow) >= threshold

    starts = sorted(int(s["startTimeUnixNano"]) for s in _entries(spans))
    since = datetime.fromtimestamp((starts[-2] + starts[-1]) / 2e9).isoformat()  # between the last two calls
    recent = _json("traces", "--dir", local, "--since", since)["spans"]
    assert [row["start_unix_nano"] for row in recent] == [starts[-1]]


def test_show_draws_a_tool_calls_trace_as_a_tree(recorded_mcp_sessions: Any, spans: list[dict[str, Any]]) -> None:
    local = str(recorded_mcp_sessions.local)
    [submit] = _json("traces", "--dir", local, "--tool", "cde_submitWork", "-n", "1", "--slower-than", "0")["spans"]
    shown = _json("traces", "show", submit["trace_id"], "--dir", local)
    [root] = shown["spans"]
    in_trace = [s for s in spans if s["traceId"] == submit["trace_id"]]

    def flatten(node: dict[str, Any]) -> list[dict[str, Any]]:
        return [node, *(n for child in node["children"] for n in flatten(child))]

    assert sorted(n["span_id"] for n in flatten(root)) == sorted(s["spanId"] for s in in_trace)
    for node in flatten(root):
        for child in node["children"]:
            assert child["parent_id"] == node["span_id"]
    assert root["name"] == submit["name"] and root["error_code"] == "E104"
    text = _cli("traces", "show", submit["trace_id"], "--dir", local).stdout
    assert f"trace {submit['trace_id']}" in text and "tools/call cde_submitWork" in text and "E104" in text


def test_show_a_successful_submit_with_its_phase_transition(recorded_mcp_sessions: Any) -> None:
    local = str(recorded_mcp_sessions.local)
    feature = recorded_mcp_sessions.feature_ids[0]
    calls = _json("traces", "--dir", local, "--feature", feature, "--tool", "cde_submitWork")["spans"]
    first = min(calls, key=lambda row: row["start_unix_nano"])
    text = _cli("traces", "show", first["trace_id"], "--dir", local).stdout
    assert "Feature.advance_phase" in text and "define → decompose" in text
    assert "FileSystemProjectRepository.save" in text


@pytest.mark.parametrize(
    ("trace_id", "code"),
    [("1234", "E404"), ("z" * 32, "E404"), ("0" * 32, "E404"), ("ab" * 16, "E405")],
)
def test_show_refuses_a_bad_or_unknown_trace_id(recorded_mcp_sessions: Any, trace_id: str, code: str) -> None:
    result = _cli("traces", "show", trace_id, "--dir", str(recorded_mcp_sessions.local))
    assert result.exit_code == 1 and f"[{code}]" in result.stderr


def test_missing_and_empty_directories_are_coded_errors(tmp_path: Path) -> None:
    missing = _cli("traces", "--dir", str(tmp_path / "nothing"))
    assert missing.exit_code == 1 and "[E401]" in missing.stderr
    empty = _cli("traces", "--dir", str(tmp_path))
    assert empty.exit_code == 1 and "[E403]" in empty.stderr


def test_a_truncated_last_line_is_skipped_not_an_error(recorded_mcp_sessions: Any, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(recorded_mcp_sessions.local, copy)
    before = _json("traces", "--dir", str(copy), "-n", "100000")
    live = copy / "traces.jsonl"
    first_line = live.read_bytes().split(b"\n", 1)[0]
    with live.open("ab") as out:
        out.write(first_line[: len(first_line) // 2])  # a writer cut off mid-line
    after = _json("traces", "--dir", str(copy), "-n", "100000")
    assert after["spans"] == before["spans"]
    assert after["read"]["skipped_lines"] == 1


def test_memory_stays_bounded_by_n_not_by_the_files(recorded_mcp_sessions: Any, tmp_path: Path) -> None:
    """A file two hundred times the size of the sessions' is read in memory far below its size.

    The peak is the n kept rows plus the largest single export request (one line), whose size
    varies with how the batch processor grouped the sessions' spans: it does not grow with the file."""
    big = tmp_path / "big"
    big.mkdir()
    lines = (recorded_mcp_sessions.local / "traces.jsonl").read_bytes()
    with (big / "traces.jsonl").open("wb") as out:
        for _ in range(200):
            out.write(lines)
    size = (big / "traces.jsonl").stat().st_size
    tracemalloc.start()
    try:
        rows = last_entries(local_spans(big, ReadStats()), EntryFilter(), 10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(rows) == 10
    assert peak < size / 10, (peak, size)


def test_files_are_read_oldest_first_by_modification_time_then_name(tmp_path: Path) -> None:
    from cde_otel.cli._otlp_files import signal_files

    names = ["traces.jsonl", "traces.b.jsonl", "traces.a.jsonl", "traces.z.jsonl", "metrics.jsonl", "traces.txt"]
    for name in names:
        (tmp_path / name).write_text("")
    times = {"traces.z.jsonl": 100, "traces.a.jsonl": 200, "traces.b.jsonl": 200, "traces.jsonl": 300}
    for name, at in times.items():
        os.utime(tmp_path / name, (at, at))
    assert [p.name for p in signal_files(tmp_path, "traces")] == [
        "traces.z.jsonl", "traces.a.jsonl", "traces.b.jsonl", "traces.jsonl"
    ]  # fmt: skip
