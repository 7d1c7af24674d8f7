"""HTTP health endpoints, served by waitress in background threads.

    from cde_otel.health import start_health_server

    server = start_health_server(port=0)        # 127.0.0.1, a free port
    server.url                                  # "http://127.0.0.1:54321"
    server.stop()                               # graceful: requests in progress are answered first

* ``GET /health`` — liveness: always 200 ``{"status": "alive", ...}`` while the process serves.
* ``GET /health/ready`` — readiness: 200 ``{"status": "ready"}``, or 503
  ``{"status": "not_ready", "reasons": [...]}`` when read-only, disk critical or the
  state is not writable.
* ``GET /health/metrics`` — the ``metrics`` block of the status.
* ``GET /health/status`` — the full status document.
* ``HEAD`` on each answers the same status and headers without a body; any other method is
  405 with ``Allow: GET, HEAD``.

A failure inside a handler answers 500 with a coded error and no traceback. HTTP/1.1
keep-alive is supported.

Under load it stays bounded (issue 15): the listen ``backlog`` is 1024 (the kernel caps it
at ``net.core.somaxconn``); one event-loop thread reads and parses requests, so idle
keep-alive and half-sent connections hold no worker, and a connection that sends nothing
for ``read_timeout_s`` (10 s) is closed; a fixed pool of ``workers`` threads (4) answers
complete requests; beyond ``connection_limit`` (1000) open connections new ones wait in the
backlog. The server is `waitress <https://docs.pylonsproject.org/projects/waitress/>`_;
its log records go to the ``cde_otel.health`` logger (the per-request queue-depth notices at
debug level), never to stderr.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

from cde_otel._exceptions import ValidationError
from cde_otel._version import __version__
from cde_otel.health._mcp_tool import default_monitor, error_summary
from cde_otel.health._monitor import HealthMonitor

_log = logging.getLogger("cde_otel.health")

READ_TIMEOUT_S = 10.0
WORKERS = 4
BACKLOG = 1024
CONNECTION_LIMIT = 1000
#: Largest request head and body accepted; health requests carry neither.
MAX_REQUEST_BYTES = 64 * 1024
ALLOWED_METHODS = ("GET", "HEAD")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _QueueDepthLog:
    """Waitress warns "Task queue depth is N" for every request that waits for a worker; in a burst that is normal."""

    def warning(self, message: str, *args: object) -> None:
        _log.debug(message, *args)


class _Dispatcher(ThreadedTaskDispatcher):  # type: ignore[misc]
    logger = _log
    queue_logger = _QueueDepthLog()

    def start_new_thread(self, target: Callable[[int], None], thread_no: int) -> None:
        worker = threading.Thread(target=target, args=(thread_no,), name=f"cde-otel-health-{thread_no}", daemon=True)
        worker.start()


class _Channel(HTTPChannel):  # type: ignore[misc]
    logger = _log


class _Server(TcpWSGIServer):  # type: ignore[misc]
    channel_class = _Channel
    logger = _log


class _Endpoints:
    """The WSGI application: routes, JSON bodies, HEAD without a body, 405 for other methods."""

    def __init__(self, monitor: HealthMonitor) -> None:
        self.monitor = monitor

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        path = str(environ.get("PATH_INFO") or "/").rstrip("/") or "/"
        headers: list[tuple[str, str]] = []
        if method not in ALLOWED_METHODS:
            status = HTTPStatus.METHOD_NOT_ALLOWED
            body: dict[str, Any] = {"status": "error", "error": {"message": f"method {method} is not allowed"}}
            headers.append(("Allow", ", ".join(ALLOWED_METHODS)))
        else:
            try:
                status, body = self._route(path)
            except Exception as exc:  # answer 500, never kill a worker or leak a traceback
                _log.exception("health endpoint %s failed", path)
                status, body = HTTPStatus.INTERNAL_SERVER_ERROR, {"status": "error", "error": error_summary(exc)}
        payload = json.dumps(body, default=str).encode()
        headers += [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(payload))),
            ("Cache-Control", "no-store"),
        ]
        start_response(f"{status.value} {status.phrase}", headers)
        return [b"" if method == "HEAD" else payload]

    def _route(self, path: str) -> tuple[HTTPStatus, dict[str, Any]]:
        if path == "/health":
            return HTTPStatus.OK, {"status": "alive", "version": __version__}
        if path == "/health/ready":
            ready, reasons = self.monitor.readiness()
            if ready:
                return HTTPStatus.OK, {"status": "ready"}
            return HTTPStatus.SERVICE_UNAVAILABLE, {"status": "not_ready", "reasons": reasons}
        if path == "/health/metrics":
            return HTTPStatus.OK, self.monitor.metrics()
        if path == "/health/status":
            return HTTPStatus.OK, self.monitor.get_status()
        return HTTPStatus.NOT_FOUND, {"status": "error", "error": {"message": f"no endpoint {path}"}}


def _valid_port(port: object) -> int:
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ValidationError(
            f"port must be a whole number from 0 to 65535, not {port!r}", "E305", {"field": "port", "value": str(port)}
        )
    return port


class HealthServer:
    """A running health server; ``stop()`` shuts it down gracefully and closes the socket."""

    def __init__(
        self,
        monitor: HealthMonitor,
        host: str,
        port: int,
        *,
        read_timeout_s: float = READ_TIMEOUT_S,
        workers: int = WORKERS,
        backlog: int = BACKLOG,
        connection_limit: int = CONNECTION_LIMIT,
    ) -> None:
        self.monitor = monitor
        self.read_timeout_s = float(read_timeout_s)
        self.workers = max(1, int(workers))
        # The loop wakes at least this often, so idle connections are closed at most one tick late.
        self._tick = min(1.0, max(0.05, self.read_timeout_s / 10))
        self._map: dict[int, Any] = {}
        self._dispatcher = _Dispatcher()
        self._server = _Server(
            _Endpoints(monitor),
            map=self._map,
            dispatcher=self._dispatcher,
            host=host,
            port=_valid_port(port),
            threads=self.workers,
            backlog=backlog,
            connection_limit=connection_limit,
            channel_timeout=max(1, round(self.read_timeout_s)),
            max_request_header_size=MAX_REQUEST_BYTES,
            max_request_body_size=MAX_REQUEST_BYTES,
            asyncore_use_poll=True,  # select() cannot watch more than 1024 sockets
            ident="cde-otel-health",
        )
        # waitress parses these as whole seconds; the maintenance pass that uses them accepts fractions.
        self._server.adj.channel_timeout = self.read_timeout_s
        self._server.adj.cleanup_interval = self._tick
        self._dispatcher.set_thread_count(self.workers)
        self.host = host
        self.port: int = int(self._server.effective_port)
        self._stopping = threading.Event()
        self._stop_lock = threading.Lock()
        self._grace_s = 5.0
        self._thread = threading.Thread(target=self._serve, name="cde-otel-health", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _serve(self) -> None:
        try:
            while not self._stopping.is_set():
                wasyncore.loop(timeout=self._tick, map=self._map, use_poll=True, count=1)
            # Stopping: accept nothing new, then flush the answers of requests already taken in.
            self._server.accepting = False
            self._server.del_channel()
            self._server.socket.close()
            deadline = time.monotonic() + self._grace_s
            while time.monotonic() < deadline and self._answers_pending():
                wasyncore.loop(timeout=0.05, map=self._map, use_poll=True, count=1)
        finally:
            wasyncore.close_all(self._map, ignore_all=True)

    def _answers_pending(self) -> bool:
        return any(
            isinstance(channel, HTTPChannel) and (channel.requests or channel.total_outbufs_len)
            for channel in list(self._map.values())
        )

    def stop(self, grace_s: float = 5.0) -> None:
        """Stops accepting, lets requests in progress finish (up to ``grace_s``), and closes every socket."""
        with self._stop_lock:
            if self._stopping.is_set():
                return
            self._grace_s = grace_s
            self._stopping.set()
        with contextlib.suppress(OSError):  # the loop may have closed its trigger already: it is stopping
            self._server.pull_trigger()  # wake the loop now rather than at its next tick
        self._thread.join(timeout=grace_s + 5)
        self._dispatcher.shutdown(cancel_pending=True, timeout=grace_s)

    def __enter__(self) -> HealthServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def start_health_server(
    port: int = 0,
    host: str = "127.0.0.1",
    monitor: HealthMonitor | None = None,
    *,
    read_timeout_s: float = READ_TIMEOUT_S,
    workers: int = WORKERS,
) -> HealthServer:
    """Serves the health endpoints in daemon threads (``port=0`` picks a free port).

    ``read_timeout_s``: a connection that sends nothing for this long is closed.
    ``workers``: threads answering requests (reading them takes none).
    """
    return HealthServer(monitor or default_monitor(), host, port, read_timeout_s=read_timeout_s, workers=workers)
