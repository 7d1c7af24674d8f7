"""Real observability backends on loopback for the cde-otel end-to-end tests.

``Backends`` starts Jaeger v2, Prometheus and the custom OpenTelemetry Collector
(``collector-config/``) as child processes bound to free 127.0.0.1 ports, waits until
each is ready, and exposes the endpoints plus small query helpers::

    with Backends() as b:
        ...send OTLP to b.otlp_grpc_endpoint / b.otlp_http_endpoint...
        b.prom_query('up')
        b.jaeger_get('/api/services')

Binaries come from the cache filled by ``scripts/install-backends.sh`` (asked through
``install-backends.sh --print-env``); the ``CDE_OTEL_{OTELCOL,JAEGER,PROMETHEUS}_BIN``
environment variables override it. A missing binary raises ``BackendsNotInstalled``;
nothing here ever skips a test.

Nothing is written into the repository: the Prometheus TSDB, the collector's log file
and each process's output live in a scratch directory (``workdir``).

Pure standard library.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "collector-config"
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-backends.sh"

T = TypeVar("T")

__all__ = [
    "Backends",
    "BackendsError",
    "BackendsNotInstalled",
    "find_binaries",
    "poll_until",
]


class BackendsError(RuntimeError):
    """A backend failed to start, became unready, or answered an API call with an error."""


class BackendsNotInstalled(BackendsError):
    """The backend binaries are not installed; run scripts/install-backends.sh."""


# --------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------


def poll_until(
    fn: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.25,
    what: str = "condition",
) -> T:
    """Call ``fn`` until it returns a truthy value or ``timeout`` seconds pass.

    Exceptions raised by ``fn`` count as "not yet"; the last one is reported on timeout.
    Returns the truthy value.
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    last_val: T | None = None
    while True:
        try:
            last_val = fn()
            if last_val:
                return last_val
        except Exception as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f"; last error: {last_exc!r}" if last_exc else f"; last value: {last_val!r}"
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}{detail}")
        time.sleep(interval)


def _ephemeral_ports() -> range:
    """The kernel's source ports for outgoing connections."""
    try:
        low, high = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    return range(low, high + 1)


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free on 127.0.0.1 for servers about to start.

    Outside the ephemeral range: a port from ``bind(0)`` is in it, and until the server binds it,
    any outgoing connection (a readiness probe's, an exporter's) can take it as its source port.
    Drawn from the system's randomness, so that test runs side by side do not draw the same ports.
    """
    ephemeral = _ephemeral_ports()
    draw = random.SystemRandom()
    ports: list[int] = []
    for _ in range(1000 * n):
        port = draw.randrange(10_000, 65_536)
        if port in ephemeral or port in ports:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use (or in TIME_WAIT)
        ports.append(port)
        if len(ports) == n:
            return ports
    raise RuntimeError(f"found {len(ports)} of {n} free ports on 127.0.0.1 outside {ephemeral}")


def _tcp_open(hostport: str) -> bool:
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def _http(url: str, *, timeout: float = 5.0, data: bytes | None = None) -> tuple[int, bytes]:
    """GET (or POST when ``data`` is given); returns (status, body) also for HTTP errors."""
    req = urllib.request.Request(url, data=data)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _tail(path: Path, lines: int = 60, max_bytes: int = 16_384) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            text = fh.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"<no log: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


def _parse_env_lines(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key.startswith("CDE_OTEL_"):
            out[key] = value
    return out


@dataclass(frozen=True)
class Binaries:
    otelcol: Path
    jaeger: Path
    prometheus: Path


def find_binaries() -> Binaries:
    """Locate the backend binaries, or raise ``BackendsNotInstalled`` saying what to run."""
    keys = {
        "otelcol": "CDE_OTEL_OTELCOL_BIN",
        "jaeger": "CDE_OTEL_JAEGER_BIN",
        "prometheus": "CDE_OTEL_PROMETHEUS_BIN",
    }
    found: dict[str, str] = {k: os.environ[v] for k, v in keys.items() if os.environ.get(v)}
    if len(found) < len(keys):
        try:
            proc = subprocess.run(
                ["bash", str(INSTALL_SCRIPT), "--print-env"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BackendsNotInstalled(f"could not run {INSTALL_SCRIPT} --print-env: {exc}") from exc
        if proc.returncode != 0:
            raise BackendsNotInstalled(
                "observability backends are not installed (install-backends.sh --print-env "
                f"exited {proc.returncode}):\n{proc.stderr.strip()}\n"
                f"Install them with: bash {INSTALL_SCRIPT}"
            )
        env = _parse_env_lines(proc.stdout)
        for name, key in keys.items():
            found.setdefault(name, env.get(key, ""))
    missing = [f"{n} ({p or 'unset'})" for n, p in found.items() if not (p and os.access(p, os.X_OK))]
    if missing:
        raise BackendsNotInstalled(
            f"backend binaries missing or not executable: {', '.join(missing)}. "
            f"Install them with: bash {INSTALL_SCRIPT}"
        )
    return Binaries(**{k: Path(v) for k, v in found.items()})


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
        return prctl
    except (OSError, AttributeError):
        return None


# Resolved in the parent so the child (between fork and exec) only makes one libc call.
_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGTERM if the test process dies without cleaning up."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


# --------------------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------------------


@dataclass
class _Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    cwd: Path
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _log_fh: Any = field(default=None, repr=False)

    def start(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            raise BackendsError(f"{self.name} is already running (pid {self.popen.pid})")
        self.starts += 1
        if self._log_fh is not None:  # previous run exited on its own
            self._log_fh.close()
        # Kept open for the life of the process (its stdout/stderr); closed in stop().
        self._log_fh = open(self.log_path, "ab")  # noqa: SIM115
        self._log_fh.write(
            f"===== start #{self.starts} {time.strftime('%Y-%m-%dT%H:%M:%S')}: {' '.join(self.argv)}\n".encode()
        )
        self._log_fh.flush()
        self.popen = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            # Only calls a pre-resolved prctl(); no imports or locks in the child.
            preexec_fn=_set_pdeathsig if _PRCTL is not None else None,  # noqa: PLW1509
        )

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop_until_closed(self, hostport: str, timeout: float = 10.0, *, interval: float = 0.1) -> None:
        """:meth:`stop`, then wait until ``hostport`` refuses connections (the port is really free again)."""
        self.stop(timeout)
        poll_until(
            lambda: not _tcp_open(hostport), timeout=timeout, interval=interval, what=f"{self.name}'s port to close"
        )

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``. Returns the exit code (None if never started)."""
        p = self.popen
        if p is None:
            return None
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=timeout)
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None
        return p.returncode

    def log_tail(self, lines: int = 60) -> str:
        return _tail(self.log_path, lines)


# --------------------------------------------------------------------------------------
# the stack
# --------------------------------------------------------------------------------------


class Backends:
    """Jaeger + Prometheus + OpenTelemetry Collector on free 127.0.0.1 ports.

    Parameters
    ----------
    workdir:
        Scratch directory for data and logs. When omitted a temp dir is created and removed
        by ``stop()`` (kept if ``CDE_OTEL_KEEP_BACKENDS_DIR`` is set). A given directory
        is never removed.
    startup_timeout:
        Seconds each backend gets to become ready.
    collector_env:
        Extra environment for the collector (e.g. ``{"COLLECTOR_BATCH_TIMEOUT": "200ms"}``).
    collector_configs:
        The collector's ``--config`` files in ``collector-config/`` (merged in order).
    jaeger_storage:
        ``"memory"`` (default here: cheap, what the export benchmarks assume) or ``"badger"``
        (persistent, in ``workdir``: traces survive a Jaeger restart).
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str] | None = None,
        *,
        startup_timeout: float = 60.0,
        collector_env: dict[str, str] | None = None,
        binaries: Binaries | None = None,
        collector_configs: tuple[str, ...] = ("otel-collector.yaml",),
        jaeger_storage: str = "memory",
    ) -> None:
        self.binaries = binaries or find_binaries()
        self.startup_timeout = startup_timeout
        if workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="cde-otel-backends-"))
            self._own_workdir = not os.environ.get("CDE_OTEL_KEEP_BACKENDS_DIR")
        else:
            self.workdir = Path(workdir).resolve()
            self.workdir.mkdir(parents=True, exist_ok=True)
            self._own_workdir = False
        if self.workdir == REPO_ROOT or REPO_ROOT in self.workdir.parents:
            raise BackendsError(f"workdir {self.workdir} is inside the repository {REPO_ROOT}")
        self.log_dir = self.workdir / "logs"
        self.log_dir.mkdir(exist_ok=True)

        (
            jaeger_otlp_grpc,
            jaeger_otlp_http,
            jaeger_query_http,
            jaeger_query_grpc,
            jaeger_telemetry,
            prom_port,
            otlp_grpc,
            otlp_http,
            col_health,
            col_telemetry,
        ) = free_ports(10)

        lo = "127.0.0.1"
        self.otlp_grpc_endpoint = f"{lo}:{otlp_grpc}"
        self.otlp_http_endpoint = f"http://{lo}:{otlp_http}"
        self.jaeger_url = f"http://{lo}:{jaeger_query_http}"
        self.jaeger_otlp_grpc_endpoint = f"{lo}:{jaeger_otlp_grpc}"
        self.prometheus_url = f"http://{lo}:{prom_port}"
        self.collector_health_url = f"http://{lo}:{col_health}/"
        self.collector_metrics_url = f"http://{lo}:{col_telemetry}/metrics"
        self.jaeger_metrics_url = f"http://{lo}:{jaeger_telemetry}/metrics"
        self.collector_logs_file = self.workdir / "collector" / "logs.jsonl"

        base_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}

        self._jaeger = _Proc(
            name="jaeger",
            argv=[str(self.binaries.jaeger), "--config", str(CONFIG_DIR / "jaeger.yaml")],
            env={
                **base_env,
                "JAEGER_OTLP_GRPC": self.jaeger_otlp_grpc_endpoint,
                "JAEGER_OTLP_HTTP": f"{lo}:{jaeger_otlp_http}",
                "JAEGER_QUERY_HTTP": f"{lo}:{jaeger_query_http}",
                "JAEGER_QUERY_GRPC": f"{lo}:{jaeger_query_grpc}",
                "JAEGER_TELEMETRY_HOST": lo,
                "JAEGER_TELEMETRY_PORT": str(jaeger_telemetry),
                "JAEGER_BADGER_DIR": str(self.workdir / "jaeger-badger"),
                "JAEGER_TRACE_STORAGE": jaeger_storage,
            },
            log_path=self.log_dir / "jaeger.log",
            cwd=self.workdir,
        )

        prom_config = self._write_prometheus_config(prom_port)
        self._prometheus = _Proc(
            name="prometheus",
            argv=[
                str(self.binaries.prometheus),
                f"--config.file={prom_config}",
                f"--storage.tsdb.path={self.workdir / 'prometheus-data'}",
                f"--web.listen-address={lo}:{prom_port}",
                "--web.enable-remote-write-receiver",
                "--enable-feature=native-histograms",
                "--log.level=info",
            ],
            env=base_env,
            log_path=self.log_dir / "prometheus.log",
            cwd=self.workdir,
        )

        self._collector = _Proc(
            name="collector",
            argv=[str(self.binaries.otelcol), *(f"--config={CONFIG_DIR / name}" for name in collector_configs)],
            env={
                **base_env,
                "OTLP_GRPC_ENDPOINT": self.otlp_grpc_endpoint,
                "OTLP_HTTP_ENDPOINT": f"{lo}:{otlp_http}",
                "JAEGER_OTLP_ENDPOINT": self.jaeger_otlp_grpc_endpoint,
                "PROMETHEUS_REMOTE_WRITE_URL": f"{self.prometheus_url}/api/v1/write",
                "COLLECTOR_LOGS_FILE": str(self.collector_logs_file),
                "COLLECTOR_HEALTH_ENDPOINT": f"{lo}:{col_health}",
                "COLLECTOR_TELEMETRY_HOST": lo,
                "COLLECTOR_TELEMETRY_PORT": str(col_telemetry),
                **(collector_env or {}),
            },
            log_path=self.log_dir / "collector.log",
            cwd=self.workdir,
        )
        self._started = False
        self._atexit_registered = False
        #: wall time of the last start() (all three backends ready), seconds
        self.startup_seconds: float | None = None

    # ---- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> Backends:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start Jaeger, Prometheus, then the collector; wait until each is ready."""
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        self._started = True
        t0 = time.monotonic()
        try:
            self._jaeger.start()
            self._prometheus.start()
            self._wait_ready(self._jaeger, self._jaeger_ready)
            self._wait_ready(self._prometheus, self._prometheus_ready)
            self.start_collector()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0

    def start_collector(self) -> None:
        """(Re)start the collector on the same ports and wait until it is ready."""
        self._collector.start()
        self._wait_ready(self._collector, self._collector_ready)

    def stop_collector(self, timeout: float = 10.0) -> None:
        """Stop the collector (SIGTERM, SIGKILL after ``timeout``) and wait for its ports to close."""
        self._collector.stop_until_closed(self.otlp_grpc_endpoint, timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate all processes (collector first), SIGKILL after ``timeout``. Idempotent."""
        for proc in (self._collector, self._jaeger, self._prometheus):
            with contextlib.suppress(Exception):  # keep stopping the others
                proc.stop(timeout)
        if self._own_workdir and self.workdir.exists():
            shutil.rmtree(self.workdir, ignore_errors=True)

    def collector_running(self) -> bool:
        """True while the collector process is alive (False after stop_collector())."""
        return self._collector.running()

    def log_tail(self, name: str, lines: int = 60) -> str:
        """Last lines of a process's output: name is 'jaeger', 'prometheus' or 'collector'."""
        return {"jaeger": self._jaeger, "prometheus": self._prometheus, "collector": self._collector}[name].log_tail(
            lines
        )

    # ---- readiness ---------------------------------------------------------------------

    def _wait_ready(self, proc: _Proc, check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last: BaseException | None = None
        while True:
            if not proc.running():
                code = proc.popen.returncode if proc.popen else None
                raise BackendsError(
                    f"{proc.name} exited with code {code} before becoming ready "
                    f"(log {proc.log_path}):\n{proc.log_tail()}"
                )
            try:
                if check():
                    return
            except Exception as exc:
                last = exc
            if time.monotonic() >= deadline:
                raise BackendsError(
                    f"{proc.name} not ready after {self.startup_timeout:.0f}s"
                    f"{f' (last error: {last!r})' if last else ''} (log {proc.log_path}):\n"
                    f"{proc.log_tail()}"
                )
            time.sleep(0.1)

    def _jaeger_ready(self) -> bool:
        status, _ = _http(f"{self.jaeger_url}/api/services", timeout=2)
        return status == 200 and _tcp_open(self.jaeger_otlp_grpc_endpoint)

    def _prometheus_ready(self) -> bool:
        status, _ = _http(f"{self.prometheus_url}/-/ready", timeout=2)
        return status == 200

    def _collector_ready(self) -> bool:
        status, _ = _http(self.collector_health_url, timeout=2)
        return (
            status == 200
            and _tcp_open(self.otlp_grpc_endpoint)
            and _tcp_open(self.otlp_http_endpoint.removeprefix("http://"))
        )

    # ---- config ------------------------------------------------------------------------

    def _write_prometheus_config(self, port: int) -> Path:
        """Copy prometheus.yml with the self-scrape target and rule path made absolute/local."""
        src = (CONFIG_DIR / "prometheus.yml").read_text()
        replacements = {
            '"localhost:9090"': f'"127.0.0.1:{port}"',
            "- rules/*.yml": f"- {CONFIG_DIR / 'rules'}/*.yml",
        }
        for old, new in replacements.items():
            if old not in src:
                raise BackendsError(f"collector-config/prometheus.yml no longer contains {old!r}")
            src = src.replace(old, new)
        dst = self.workdir / "prometheus.yml"
        dst.write_text(src)
        return dst

    # ---- queries -----------------------------------------------------------------------

    def prom_query(self, expr: str, *, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query; returns ``data.result`` (list of {metric, value|histogram})."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        status, body = _http(f"{self.prometheus_url}/api/v1/query", data=urllib.parse.urlencode(params).encode())
        try:
            doc = json.loads(body)
        except ValueError as exc:
            raise BackendsError(f"prometheus query {expr!r}: HTTP {status}: {body[:500]!r}") from exc
        if status != 200 or doc.get("status") != "success":
            raise BackendsError(f"prometheus query {expr!r}: HTTP {status}: {doc}")
        result: list[dict[str, Any]] = doc["data"]["result"]
        return result

    def prom_series(self, match: str) -> list[dict[str, str]]:
        """``/api/v1/series?match[]=...`` (label sets of matching series)."""
        q = urllib.parse.urlencode({"match[]": match})
        status, body = _http(f"{self.prometheus_url}/api/v1/series?{q}")
        doc = json.loads(body)
        if status != 200 or doc.get("status") != "success":
            raise BackendsError(f"prometheus series {match!r}: HTTP {status}: {doc}")
        series: list[dict[str, str]] = doc["data"]
        return series

    def jaeger_get(self, path: str, **params: Any) -> Any:
        """GET a Jaeger query API path (e.g. '/api/traces', service='x'); returns parsed JSON."""
        url = f"{self.jaeger_url}/{path.lstrip('/')}"
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        status, body = _http(url)
        if status != 200:
            raise BackendsError(f"jaeger GET {url}: HTTP {status}: {body[:500]!r}")
        return json.loads(body)

    def collector_log_requests(self) -> list[dict[str, Any]]:
        """Parsed lines of the collector's file exporter (OTLP/JSON ExportLogsServiceRequest each)."""
        try:
            text = self.collector_logs_file.read_text()
        except FileNotFoundError:
            return []
        out = []
        for raw in text.splitlines():
            line = raw.strip()
            if line:
                with contextlib.suppress(ValueError):  # a line still being written
                    out.append(json.loads(line))
        return out

    def collector_log_records(self) -> list[dict[str, Any]]:
        """Flattened log records from the file exporter, each with its resource attached."""
        records = []
        for req in self.collector_log_requests():
            for rl in req.get("resourceLogs", []):
                for sl in rl.get("scopeLogs", []):
                    for rec in sl.get("logRecords", []):
                        records.append({**rec, "_resource": rl.get("resource", {}), "_scope": sl.get("scope", {})})
        return records
