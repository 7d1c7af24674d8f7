"""Fixtures of the unit tests that need more than the suite-wide ones (tests/conftest.py).

* ``otel`` — :class:`~cde_otel.instrumentation.CDEInstrumentor` instrumented into fresh in-memory
  providers (default settings, no operation log events), uninstrumented after the test.

* ``global_telemetry`` — in-memory providers installed once as the process's global tracer
  provider: the mcp SDK 2.x traces through the global provider (its server span, and the client
  span whose context it injects into ``params._meta``), so the tests that look at those spans
  share it. Clear its spans first (``global_telemetry.span_exporter.clear()``).

* ``exporter``, ``provider`` — an in-memory log record exporter and a LoggerProvider that exports
  each record to it at once (shut down after the test).

* ``logging_reset_after`` — ``reset_logging()`` after the test (``pytest.mark.usefixtures``).

* ``health_serve`` — ``with health_serve(cli, project, env) as process``: ``cli health serve --port 0
  --path project`` as a subprocess with ``env`` on top of this environment, announced on stdout and
  ready (``GET /health/ready`` is 200); killed on the way out if it still runs.
"""

from __future__ import annotations

import gc
import os
import re
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

from cde_otel.instrumentation import CDEInstrumentor
from cde_otel.logging import reset_logging
from cde_otel.resilience import breakers
from cde_otel.settings import load_settings
from cde_otel.testing import CapturedTelemetry, capture_telemetry


@pytest.fixture(autouse=True)
def _no_open_breaker_outlives_its_test() -> Iterator[None]:
    """Health reports every live circuit breaker of the process. One a test opened and dropped stays
    registered until the garbage collector frees it (a reference cycle), and the next test's health
    would count it: it is collected as its test ends."""
    yield
    if any(state != "closed" for state in breakers().values()):
        gc.collect()


@pytest.fixture
def otel() -> Iterator[CapturedTelemetry]:
    telemetry = capture_telemetry()
    CDEInstrumentor().instrument(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        settings=load_settings({}),
        log_operations=False,
    )
    try:
        yield telemetry
    finally:
        CDEInstrumentor().uninstrument()
        telemetry.shutdown()


@pytest.fixture(scope="session")
def global_telemetry() -> Iterator[CapturedTelemetry]:
    captured = capture_telemetry()
    trace.set_tracer_provider(captured.tracer_provider)  # the API allows this once per process
    assert trace.get_tracer_provider() is captured.tracer_provider, "a global tracer provider was set earlier"
    yield captured
    captured.shutdown()


@pytest.fixture
def exporter() -> InMemoryLogRecordExporter:
    return InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]  # untyped SDK constructor


@pytest.fixture
def provider(exporter: InMemoryLogRecordExporter) -> Iterator[LoggerProvider]:
    lp = LoggerProvider(shutdown_on_exit=False)
    lp.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    yield lp
    lp.shutdown()


@pytest.fixture
def logging_reset_after() -> Iterator[None]:
    yield
    reset_logging()


HealthServe = Callable[[list[str], Path, dict[str, str]], AbstractContextManager["subprocess.Popen[str]"]]


@pytest.fixture
def health_serve() -> HealthServe:
    @contextmanager
    def serve(cli: list[str], project: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
        process = subprocess.Popen(
            [*cli, "health", "serve", "--port", "0", "--path", str(project)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env},
        )  # fmt: skip
        try:
            assert process.stdout is not None
            line = process.stdout.readline()  # blocks until the server announces itself
            match = re.search(r"http://127\.0\.0\.1:(\d+)/health", line)
            assert match, line + (process.stderr.read() if process.stderr else "")
            with urllib.request.urlopen(f"http://127.0.0.1:{match[1]}/health/ready", timeout=5) as response:
                assert response.status == 200
            yield process
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()

    return serve
