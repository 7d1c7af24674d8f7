"""``cde-otel mcp`` against a hostile client: what reaches stderr, the OTLP files and the log file stays clean.

The real server (``cde-otel mcp``, official SDK 2.x, which parses ``_meta`` itself) is driven by
the official client over stdio, with telemetry on, the embedded OTLP-JSON files in a temporary
directory, a log file, and content capture on (``CDE_OTEL_CAPTURE_CONTENT=true``). The client
sends: a 10 MB ``baggage``, correlation ids with line breaks, ANSI escapes or 100 KB, a garbage
``traceparent`` and ``tracestate``, and prompts and results holding secrets. Then every output is
read: sizes bounded, no secret, no raw escape, every correlation id printable and ≤ 128
characters, and every call answered (a generous client timeout, no wall-clock assertion).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cde_otel.redaction import MASK
from cde_otel.semconv import ATTR_CORRELATION_ID, ATTR_GEN_AI_TOOL_CALL_ARGUMENTS, ATTR_GEN_AI_TOOL_NAME

EnvFactory = Callable[..., dict[str, str]]
SpanReader = Callable[[Path], Any]
LogReader = Callable[[Path], list[dict[str, Any]]]

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
ANTHROPIC_KEY = "sk-" + "ant-api03-" + "Zq9xY8wV7uT6sR5qP4oN3mL2kJ1iH0gF"
SECRETS = ("hunter2", ANTHROPIC_KEY[10:])
HUGE_BAGGAGE = "cde.correlation_id=run-1," + ",".join(f"k{n}=" + "v" * 90 for n in range(110_000))  # ~10 MB
HOSTILE_METAS: dict[str, dict[str, Any]] = {
    "huge_baggage": {"traceparent": TRACEPARENT, "baggage": HUGE_BAGGAGE},
    "huge_baggage_alone": {"baggage": HUGE_BAGGAGE},
    "newline_id": {"traceparent": TRACEPARENT, "cde.correlation_id": "run-2\ninjected: true"},
    "ansi_id": {"cde.correlation_id": "\x1b[31mrun-3\x1b[0m\r\n"},
    "huge_id": {"cde.correlation_id": "run-4" + "x" * 100_000},
    "newline_baggage_id": {"baggage": "cde.correlation_id=run-5%0Ainjected%1B%5B31m"},
    "garbage_traceparent": {"traceparent": "zz-" + "q" * 10_000, "tracestate": "k=" + "v" * 100_000},
}
# Generous bounds for everything a session of 9 calls leaves behind (the 10 MB header twice
# would be 20 MB per output, and was 42 MB before the header was bounded).
MAX_STDERR = 64 * 1024
MAX_LOG_FILE = 512 * 1024
MAX_OTLP = 2 * 1024 * 1024


@dataclass
class Session:
    answers: dict[str, Any]
    stderr: str
    log_file: str
    otlp: dict[str, int]
    spans: list[dict[str, Any]]
    records: list[dict[str, Any]]
    raw: str  # every output, concatenated


@pytest.fixture(scope="module")
def session(
    tmp_path_factory: pytest.TempPathFactory,
    run_session: Callable[..., Any],
    otlp_json_spans: SpanReader,
    otlp_json_logs: LogReader,
) -> Session:

    tmp_path = tmp_path_factory.mktemp("hostile")
    project, local, log_file = tmp_path / "project", tmp_path / "telemetry", tmp_path / "cde.log"
    project.mkdir()
    dropped = ("CDE_OTEL_", "OTEL_", "TRACEPARENT", "BAGGAGE", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env.update(
        CDE_OTEL_ENABLED="true",
        CDE_OTEL_LOCAL_DIR=str(local),
        CDE_OTEL_LOG_FILE=str(log_file),
        CDE_OTEL_CAPTURE_CONTENT="true",
    )
    command = str(Path(sys.executable).with_name("cde-otel"))

    async def scenario(client: Any) -> dict[str, Any]:
        answers: dict[str, Any] = {}
        prompt = f"Add login; the db uses password=hunter2 and the key {ANTHROPIC_KEY}"
        started = await client.call_tool(
            "cde_startFeature", {"prompt": prompt, "project_path": str(project)}, read_timeout_seconds=60
        )
        answers["start"] = started
        feature_id = json.loads(started.content[0].text)["feature_id"]
        for name, meta in HOSTILE_METAS.items():
            answers[name] = await client.call_tool(
                "cde_getFeatureStatus",
                {"feature_id": feature_id, "project_path": str(project)},
                read_timeout_seconds=60,
                meta=meta,
            )
        answers["submit"] = await client.call_tool(
            "cde_submitWork",
            {"feature_id": feature_id, "phase": "define", "results": {"notes": f"token: {ANTHROPIC_KEY}"}},
            read_timeout_seconds=60,
            meta={"cde.correlation_id": "run-6\n\x1b[2J"},
        )
        return answers

    answers = run_session(command, ["mcp", "--project", str(project)], env, tmp_path, scenario)
    otlp = {path.name: path.stat().st_size for path in local.glob("*.jsonl")}
    raw = "".join(path.read_text() for path in local.glob("*.jsonl"))
    stderr = (tmp_path / "server.stderr").read_text()
    log_text = log_file.read_text() if log_file.exists() else ""
    spans = list(otlp_json_spans(local / "traces.jsonl"))
    records = otlp_json_logs(local / "logs.jsonl") if (local / "logs.jsonl").exists() else []
    return Session(answers, stderr, log_text, otlp, spans, records, raw + stderr + log_text)


def test_every_call_is_answered(session: Session) -> None:
    assert not session.answers["start"].is_error
    for name in HOSTILE_METAS:
        answer = session.answers[name]
        assert not answer.is_error, (name, answer.content)
        assert json.loads(answer.content[0].text)["feature_id"]
    assert not session.answers["submit"].is_error


def test_what_reaches_each_output_is_bounded(session: Session) -> None:
    assert len(session.stderr) <= MAX_STDERR, session.stderr[:2000]
    assert len(session.log_file) <= MAX_LOG_FILE
    assert set(session.otlp) >= {"traces.jsonl"}
    assert sum(session.otlp.values()) <= MAX_OTLP
    assert "vvvvvvvvvv" * 100 not in session.raw  # no header quoted at length anywhere


def test_no_secret_reaches_any_output_and_content_is_still_captured(session: Session) -> None:
    for secret in SECRETS:
        assert secret not in session.raw, secret
    [start] = [s for s in session.spans if s["attrs"].get(ATTR_GEN_AI_TOOL_NAME) == "cde_startFeature"]
    captured = start["attrs"][ATTR_GEN_AI_TOOL_CALL_ARGUMENTS]
    assert "Add login" in captured and MASK in captured  # kept on purpose, secrets masked


def test_no_raw_line_break_or_escape_in_any_correlation_id(session: Session) -> None:
    ids = [s["attrs"][ATTR_CORRELATION_ID] for s in session.spans if ATTR_CORRELATION_ID in s["attrs"]]
    ids += [
        r["attrs"][key]
        for r in session.records
        for key in ("correlation_id", "cde_correlation_id")
        if key in r["attrs"]
    ]
    ids += [json.loads(line).get("correlation_id") for line in session.log_file.splitlines()]
    ids = [cid for cid in ids if cid is not None]
    assert len(ids) > len(HOSTILE_METAS)
    assert all(isinstance(cid, str) and len(cid) <= 128 and cid.isprintable() for cid in ids), ids
    assert "\x1b" not in session.raw and "\\u001b" not in session.raw
    server_ids = {
        s["attrs"][ATTR_CORRELATION_ID]
        for s in session.spans
        if s["attrs"].get(ATTR_GEN_AI_TOOL_NAME) and s["kind"] == 2
    }
    assert {"run-1", "run-2injected: true", "run-3"} <= server_ids  # the client's ids, cleaned, still honoured
