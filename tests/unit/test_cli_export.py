"""``cde-otel export``: what reaches an OTLP/HTTP endpoint, resuming, retries and coded errors.

The files are those of real MCP sessions (rotated); the endpoint here is a small loopback HTTP
server recording each request and answering with the statuses a test scripts (429/503, 400), which
a real collector cannot be made to do on cue. Delivery into the real Collector is in the e2e suite.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock
from typer.testing import CliRunner

from cde_otel.cli import app
from cde_otel.cli._export_state import LOCK_FILE, STATE_FILE, ExportState, FileIdentity

SpanReader = Callable[[Path], Iterator[dict[str, Any]]]


class Endpoint:
    """Records every POST (path, parsed body); answers with ``statuses`` in turn, then 200."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.attempts = 0
        self.statuses: list[int] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                endpoint.attempts += 1
                status = endpoint.statuses.pop(0) if endpoint.statuses else 200
                if status == 200:
                    assert self.headers["Content-Type"] == "application/json"
                    endpoint.received.append((self.path, json.loads(body)))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def span_ids(self) -> Counter[str]:
        return Counter(
            span["spanId"]
            for path, body in self.received
            if path == "/v1/traces"
            for rs in body["resourceSpans"]
            for ss in rs["scopeSpans"]
            for span in ss["spans"]
        )


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    served = Endpoint()
    yield served
    served.server.shutdown()
    served.server.server_close()


@pytest.fixture
def local(recorded_mcp_sessions: Any, tmp_path: Path) -> Path:
    """A copy of the sessions' directory (exports write their progress file into it)."""
    copy = tmp_path / "telemetry"
    shutil.copytree(recorded_mcp_sessions.local, copy)
    return copy


def _export(local: Path, url: str, *extra: str) -> Any:
    return CliRunner().invoke(app, ["export", "--to", url, "--dir", str(local), "--json", *extra])


def _file_span_ids(local: Path, otlp_json_spans: SpanReader) -> Counter[str]:
    return Counter(s["spanId"] for path in local.glob("traces*.jsonl") for s in otlp_json_spans(path))


def _lines(local: Path, signal: str) -> int:
    return sum(len(path.read_bytes().splitlines()) for path in local.glob(f"{signal}*.jsonl"))


def test_every_span_is_sent_once_even_when_stopped_after_each_batch(
    local: Path, endpoint: Endpoint, otlp_json_spans: SpanReader
) -> None:
    runs = 0
    while True:
        result = _export(local, endpoint.url, "--max-batches", "1", "--batch-lines", "3")
        assert result.exit_code == 0, result.output
        runs += 1
        if json.loads(result.stdout)["complete"]:
            break
        assert runs < 50
    assert runs > _lines(local, "traces") // 3  # each run resumed where the last one stopped, inside files too
    assert endpoint.span_ids() == _file_span_ids(local, otlp_json_spans)
    assert set(endpoint.span_ids().values()) == {1}
    sent = Counter(path for path, _ in endpoint.received)
    assert set(sent) == {"/v1/traces", "/v1/metrics", "/v1/logs"}
    again = json.loads(_export(local, endpoint.url).stdout)
    assert again["complete"] and all(s["lines"] == 0 for s in again["signals"].values())
    _export(local, endpoint.url, "--signal", "traces")  # a one-signal export forgets nothing of the others
    again = json.loads(_export(local, endpoint.url).stdout)
    assert all(s["lines"] == 0 for s in again["signals"].values())


def test_one_run_sends_every_line_and_reports_it(local: Path, endpoint: Endpoint, otlp_json_spans: SpanReader) -> None:
    report = json.loads(_export(local, endpoint.url).stdout)
    for signal in ("traces", "metrics", "logs"):
        assert report["signals"][signal]["lines"] == _lines(local, signal)
        assert report["signals"][signal]["files"] == 2
    assert report["signals"]["traces"]["items"] == sum(_file_span_ids(local, otlp_json_spans).values())
    assert (local / STATE_FILE).exists()


def test_resume_survives_a_rotation_and_sends_only_new_lines(local: Path, endpoint: Endpoint) -> None:
    live = local / "traces.jsonl"
    lines = live.read_bytes().splitlines(keepends=True)
    assert len(lines) >= 5, "the recorded session wrote too few export lines for this scenario"
    live.write_bytes(b"".join(lines[:2]))
    assert json.loads(_export(local, endpoint.url, "--signal", "traces").stdout)["complete"]
    before = len(endpoint.received)
    with live.open("ab") as out:
        out.write(lines[2])
    live.rename(local / "traces.rotated-now.jsonl")  # what the writer's rotation does
    (local / "traces.jsonl").write_bytes(b"".join(lines[3:5]))
    report = json.loads(_export(local, endpoint.url, "--signal", "traces").stdout)
    assert report["signals"]["traces"]["lines"] == 3  # the rotated file's new line and the new file's two
    new = [body for _, body in endpoint.received[before:]]
    assert json.dumps(new).count('"spanId"') == sum(line.count(b'"spanId"') for line in lines[2:5])


def test_a_line_still_being_written_waits_and_a_truncated_closed_one_is_skipped(
    local: Path, endpoint: Endpoint
) -> None:
    live = local / "traces.jsonl"
    complete = live.read_bytes()
    first = complete.split(b"\n", 1)[0]
    with live.open("ab") as out:
        out.write(first[:100])  # the writer is mid-line
    report = json.loads(_export(local, endpoint.url, "--signal", "traces").stdout)
    assert report["signals"]["traces"]["skipped_lines"] == 0
    with live.open("ab") as out:
        out.write(first[100:] + b"\n")  # the writer finished it
    report = json.loads(_export(local, endpoint.url, "--signal", "traces").stdout)
    assert report["signals"]["traces"]["lines"] == 1
    rotated = local / "traces.closed.jsonl"
    rotated.write_bytes(first + b"\n" + first[:50])  # closed with a cut-off line: never completed
    report = json.loads(_export(local, endpoint.url, "--signal", "traces").stdout)
    assert report["signals"]["traces"]["lines"] == 1 and report["signals"]["traces"]["skipped_lines"] == 1


def test_429_and_503_are_retried_a_bounded_number_of_times(
    local: Path, endpoint: Endpoint, otlp_json_spans: SpanReader
) -> None:
    endpoint.statuses = [503, 429]
    result = _export(local, endpoint.url, "--signal", "traces")
    assert result.exit_code == 0, result.output
    assert endpoint.span_ids() == _file_span_ids(local, otlp_json_spans)

    endpoint.received.clear()
    (local / STATE_FILE).unlink()
    endpoint.statuses = [503] * 3
    endpoint.attempts = 0
    failed = _export(local, endpoint.url, "--signal", "traces", "--retries", "2")
    assert failed.exit_code == 1 and "[E406]" in failed.stderr
    assert endpoint.attempts == 3 and endpoint.received == []
    resumed = _export(local, endpoint.url, "--signal", "traces")
    assert resumed.exit_code == 0
    assert endpoint.span_ids() == _file_span_ids(local, otlp_json_spans)


def test_a_rejected_batch_is_e407_and_is_not_marked_sent(local: Path, endpoint: Endpoint) -> None:
    endpoint.statuses = [400]
    failed = _export(local, endpoint.url, "--signal", "traces")
    assert failed.exit_code == 1 and "[E407]" in failed.stderr and endpoint.attempts == 1
    assert json.loads(_export(local, endpoint.url, "--signal", "traces").stdout)["signals"]["traces"]["lines"] == (
        _lines(local, "traces")
    )


def test_unreachable_collector_locked_directory_and_bad_state_are_coded_errors(local: Path, endpoint: Endpoint) -> None:
    closed = Endpoint()
    closed.server.server_close()  # a port nobody listens on any more
    unreachable = _export(local, closed.url, "--retries", "0")
    assert unreachable.exit_code == 1 and "[E406]" in unreachable.stderr

    with FileLock(local / LOCK_FILE):
        locked = _export(local, endpoint.url)
    assert locked.exit_code == 1 and "[E408]" in locked.stderr and endpoint.received == []

    (local / STATE_FILE).write_text("{not json")
    bad = _export(local, endpoint.url)
    assert bad.exit_code == 1 and "[E409]" in bad.stderr and endpoint.received == []


def test_a_new_file_on_a_reused_inode_starts_from_zero(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    path.write_bytes(b'{"resourceSpans": []}\n')
    state = ExportState(tmp_path, "http://x")
    with path.open("rb") as handle:
        identity = FileIdentity.of(handle)
        state.advance(identity, path.name, 22)
        assert state.offset(identity, handle) == 22
    path.write_bytes(b'{"resourceLogs": []}\n{"resourceLogs": []}\n')  # same inode, other content
    with path.open("rb") as handle:
        assert os.fstat(handle.fileno()).st_ino == int(identity.key.split(":")[1])
        assert state.offset(FileIdentity.of(handle), handle) == 0
