"""The servers the MCP benchmark drives, the Collector their OTLP goes to, and what they emitted.

* ``fixture_servers``: the orchestrator fixture (through ``_orchestrator_server``) telemetry off,
  on (embedded default: local OTLP-JSON files; and OTLP/HTTP to the Collector), and the floor
  (``_floor_server``: the same signals on the plain SDK) in both export modes; two processes each
  of ours and the floor;
* ``Collector``: the real OpenTelemetry Collector (``scripts/install-backends.sh``) on a free
  loopback port, writing what it receives to a file, so each server's spans and log records can
  be counted by ``service.name``;
* ``cpu_ticks``: a process's CPU (utime + stime, every thread, live or gone), or its main
  thread's, from ``/proc``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
FIXTURES = ROOT / "tests" / "mcp_fixtures"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Server:
    command: str
    args: list[str]
    env: dict[str, str]
    files: Path | None = None  # where its embedded-default (or floor) files are written
    service: str | None = None  # its service.name at the Collector


def venv_python(name: str) -> Path:
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "mcp-test-venvs.sh")], capture_output=True, text=True, check=True
    )
    for line in done.stdout.splitlines():
        key, _, value = line.partition("=")
        if key == f"CDE_OTEL_VENV_{name.upper()}":
            return Path(value) / "bin" / "python"
    raise RuntimeError(f"no venv {name} in {done.stdout!r}")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDE_OTEL_", "OTEL_", "TRACEPARENT", "BAGGAGE"))}
    env.pop("PYTHONPATH", None)
    env.update(extra)
    return env


def fixture_servers(python: str, work: Path, otlp_endpoint: str | None) -> dict[str, Server]:
    path = {"PYTHONPATH": str(FIXTURES)}
    plain = [str(BENCH / "_orchestrator_server.py")]
    floor = [str(BENCH / "_floor_server.py")]
    on = {"CDE_OTEL_ENABLED": "true"}
    servers = {
        "off": Server(python, plain, clean_env(**path)),
        "on": Server(python, plain, clean_env(**path, **on, CDE_OTEL_LOCAL_DIR=str(work / "on")), work / "on"),
        "floor": Server(python, floor, clean_env(**path, CDE_FLOOR_DIR=str(work / "floor")), work / "floor"),
        # A second process of each: two processes of the same code differ by a few per cent (memory
        # layout, start position), which one pair would pass off as a difference of the code.
        "floor_2": Server(python, floor, clean_env(**path, CDE_FLOOR_DIR=str(work / "floor_2")), work / "floor_2"),
        "on_2": Server(python, plain, clean_env(**path, **on, CDE_OTEL_LOCAL_DIR=str(work / "on_2")), work / "on_2"),
        "on_without_mcp": Server(
            python,
            plain,
            clean_env(
                **path, **on, CDE_OTEL_LOCAL_DIR=str(work / "nomcp"), OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="cde_mcp"
            ),
        ),
        "on_logs_warning": Server(
            python, plain, clean_env(**path, **on, CDE_OTEL_LOCAL_DIR=str(work / "warn"), CDE_OTEL_LOG_LEVEL="warning")
        ),
    }
    if otlp_endpoint is not None:
        otlp = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
        for name, command in (("on_otlp", plain), ("floor_otlp", floor), ("floor_otlp_2", floor), ("on_otlp_2", plain)):
            service = f"bench-{name.replace('_', '-')}"
            settings = {**on, **otlp} if command is plain else otlp
            env = clean_env(**path, **settings, OTEL_SERVICE_NAME=service)
            servers[name] = Server(python, command, env, service=service)
    return servers


def cpu_ticks(pid: int, *, main_thread: bool = False) -> int:
    """utime + stime of the whole process (all threads, including those that ended), in clock ticks;
    with ``main_thread``, of its main thread alone (the one that serves a stdio server's requests)."""
    stat = f"/proc/{pid}/task/{pid}/stat" if main_thread else f"/proc/{pid}/stat"
    fields = Path(stat).read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5), counted after "(comm)"


# -- what was emitted ----------------------------------------------------------------------------
def _requests(path: Path) -> Iterator[dict[str, Any]]:
    if path.exists():
        with path.open() as lines:
            for line in lines:
                if line.strip():
                    yield json.loads(line)


def _service(resource: dict[str, Any]) -> str:
    for attribute in resource.get("attributes", ()):
        if attribute.get("key") == "service.name":
            return str(attribute.get("value", {}).get("stringValue"))
    return "?"


#: (what is counted, the request's key, the scope's key, the items' key)
_SIGNALS = (("spans", "resourceSpans", "scopeSpans", "spans"), ("logs", "resourceLogs", "scopeLogs", "logRecords"))


def count_items(paths: list[Path]) -> dict[str, Counter[str]]:
    """Spans and log records in OTLP-JSON files (one export request a line), and the attributes they
    carry (``span_attributes``, ``log_attributes``), by service.name."""
    counts: dict[str, Counter[str]] = {
        kind: Counter() for kind in ("spans", "logs", "span_attributes", "log_attributes")
    }
    for path in paths:
        for request in _requests(path):
            for kind, resources_key, scopes_key, items_key in _SIGNALS:
                attributes = counts[f"{kind[:-1]}_attributes"]
                for resource in request.get(resources_key, ()):
                    service = _service(resource.get("resource", {}))
                    for scope in resource.get(scopes_key, ()):
                        items = scope.get(items_key, ())
                        counts[kind][service] += len(items)
                        attributes[service] += sum(len(item.get("attributes", ())) for item in items)
    return counts


def emitted_files(directory: Path) -> dict[str, int]:
    """The spans, log records and their attributes written as OTLP-JSON lines under ``directory``."""
    counts = count_items(sorted(directory.rglob("*.jsonl")))
    return {kind: sum(by_service.values()) for kind, by_service in counts.items()}


def emitted(server: Server, collector_file: Path | None) -> dict[str, int]:
    if server.files is not None:
        return emitted_files(server.files)
    assert collector_file is not None and server.service is not None
    counts = count_items([collector_file])
    return {kind: by_service[server.service] for kind, by_service in counts.items()}


# -- the Collector ---------------------------------------------------------------------------------
_CONFIG = """
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{port}
exporters:
  file:
    path: {out}
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces: {{receivers: [otlp], exporters: [file]}}
    metrics: {{receivers: [otlp], exporters: [file]}}
    logs: {{receivers: [otlp], exporters: [file]}}
"""


class Collector:
    """The real Collector on a free loopback port; ``out`` is the file it writes (OTLP-JSON lines)."""

    def __init__(self, work: Path) -> None:
        sys.path.insert(0, str(ROOT / "tests" / "e2e"))
        from backends import find_binaries, free_ports

        # the e2e's override, else what install-backends.sh built
        self.binary = Path(os.environ.get("CDE_OTEL_OTELCOL_BIN") or find_binaries().otelcol)
        [self.port] = free_ports(1)
        self.out = work / "collector.jsonl"
        self.config = work / "collector.yaml"
        self.config.write_text(_CONFIG.format(port=self.port, out=self.out))
        self.log = work / "collector.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Collector:
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen([str(self.binary), "--config", str(self.config)], stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the Collector exited: {self.log.read_text()[-2000:]}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"the Collector did not listen within 30 s: {self.log.read_text()[-2000:]}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cpu_ticks(self) -> int:
        assert self.proc is not None
        return cpu_ticks(self.proc.pid)
