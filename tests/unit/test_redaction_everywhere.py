"""Redaction everywhere: secrets fed through every path, every output grepped.

One real process with telemetry on by the environment, a log file, the opt-in console and the
embedded OTLP-JSON files. The host prints nothing itself (a NullHandler on root; its structlog
renders to a ReturnLogger), so every byte on stderr and stdout is cde-otel's. The secrets go
through: a stdlib ``logger.exception``, a structlog ``.exception`` (the bridge inserted in the
host's chain), an instrumented operation raising (span exception event and status), a coded
error built from user text (E303 ``unknown phase '...'`` and the ``cde.feature.next_phase``
attribute), a log record with a secret in its message, and a span another instrumentation
records an exception on (the exporter backstop). Then: no ``hunter2`` and no ``sk-live-`` in
any output, and ``[REDACTED]`` in each output that carried one, so the test cannot pass by
losing the records.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from cde_otel.redaction import MASK

EnvFactory = Callable[..., dict[str, str]]

SECRETS = ("hunter2", "sk-live-")

VAULT = textwrap.dedent(
    """
    class Vault:
        def open(self, dsn):
            raise RuntimeError(f"db login failed for {dsn}: password=hunter2 api_key=sk-live-abcdefghijklmnop1234")
    """
)

HOST = textwrap.dedent(
    """
    import logging, sys
    import structlog

    logging.getLogger().addHandler(logging.NullHandler())  # the host itself prints nothing
    logging.getLogger().setLevel(logging.INFO)
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.format_exc_info,
                    structlog.processors.JSONRenderer()],
        logger_factory=structlog.ReturnLoggerFactory(),
    )
    SECRET = "password=hunter2 api_key=sk-live-abcdefghijklmnop1234 and bare sk-live-abcdefghijklmnop1234"

    from cde_otel.core import Project  # telemetry starts here
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode
    from vault import Vault

    log = logging.getLogger("app.db")
    try:
        raise RuntimeError("db login failed: " + SECRET)
    except RuntimeError:
        log.exception("stdlib: login failed with %s", SECRET)
    try:
        raise RuntimeError("db login failed: " + SECRET)
    except RuntimeError:
        structlog.get_logger("app.s").exception("structlog: login failed", api_key="sk-live-abcdefghijklmnop1234",
                                                detail=SECRET)
    log.warning("connecting with " + SECRET)
    try:
        Vault().open("postgres://app:hunter2@db/app")
    except RuntimeError:
        pass
    project = Project(name="guest", path="/nonexistent/guest")
    project.activate()
    feature = project.start_feature("Add login")
    try:
        feature.advance_phase("decompose password=hunter2")  # E303: the coded message quotes the user's text
    except Exception as error:
        assert error.code == "E303"
    with trace.get_tracer("some.other.instrumentation").start_as_current_span("foreign") as span:
        span.record_exception(RuntimeError("foreign failure: " + SECRET))
        span.set_status(Status(StatusCode.ERROR, "foreign failure: " + SECRET))
    print("done")
    """
)


def test_no_secret_reaches_any_output(tmp_path: Path, clean_env: EnvFactory) -> None:
    (tmp_path / "vault.py").write_text(VAULT)
    (tmp_path / "host.py").write_text(HOST)
    local, log_file = tmp_path / "telemetry", tmp_path / "logs" / "cde.log"
    env = clean_env(
        CDE_OTEL_ENABLED="true",
        CDE_OTEL_LOCAL_DIR=str(local),
        CDE_OTEL_LOG_FILE=str(log_file),
        CDE_OTEL_LOG_CONSOLE="true",
        CDE_OTEL_LOG_FORMAT="json",
        CDE_OTEL_TARGETS="vault:Vault.open",
    )
    result = subprocess.run(
        [sys.executable, "host.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "done"

    outputs = {
        "stderr (console)": result.stderr,
        "stdout": result.stdout,
        "log file": "".join(p.read_text() for p in sorted(log_file.parent.glob("cde.log*"))),
        "traces.jsonl": (local / "traces.jsonl").read_text(),
        "logs.jsonl": (local / "logs.jsonl").read_text(),
        "metrics.jsonl": (local / "metrics.jsonl").read_text(),
    }
    for name, text in outputs.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} leaked into {name}: ...{_around(text, secret)}..."

    # Every path carried its secret to the outputs, masked: nothing passed by getting lost.
    for name in ("stderr (console)", "log file", "traces.jsonl", "logs.jsonl"):
        assert MASK in outputs[name], name
    traces, logs, console = outputs["traces.jsonl"], outputs["logs.jsonl"], outputs["stderr (console)"]
    assert "db login failed for postgres://app:[REDACTED]@db/app: password=[REDACTED]" in traces  # our span
    assert "foreign failure: password=[REDACTED]" in traces  # another instrumentation's span: the backstop
    assert "unknown phase" in traces and '"stringValue":"invalid"' in traces.replace(" ", "")  # E303, next_phase
    for body in ("stdlib: login failed", "structlog: login failed", "connecting with"):
        assert body in logs, body
    for body in ("stdlib: login failed", "connecting with"):  # the host's structlog renders for itself
        assert body in console and body in outputs["log file"], body
    assert "Traceback" in console and "exception.stacktrace" in logs  # the stack traces are there, scrubbed


def _around(text: str, secret: str) -> str:
    index = text.index(secret)
    return text[max(0, index - 200) : index + 50]
