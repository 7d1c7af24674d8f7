"""HTTP health endpoints on the standard library's threading server.

    from cde_otel.health import start_health_server

    server = start_health_server(port=0)        # 127.0.0.1, a free port
    server.url                                  # "http://127.0.0.1:54321"
    server.stop()

* ``GET /health`` — liveness: always 200 ``{"status": "alive", ...}`` while the process serves.
* ``GET /health/ready`` — readiness: 200 ``{"status": "ready"}``, or 503
  ``{"status": "not_ready", "reasons": [...]}`` when read-only, disk critical or the
  state is not writable.
* ``GET /health/metrics`` — the ``metrics`` block of the status.
* ``GET /health/status`` — the full status document.

A failure inside a handler answers 500 with a coded error and no traceback. HTTP/1.1
keep-alive is supported; request logging goes to the ``cde_otel.health`` logger at
debug level instead of stderr.
"""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cde_otel._version import __version__
from cde_otel.health._mcp_tool import default_monitor, error_summary
from cde_otel.health._monitor import HealthMonitor

_log = logging.getLogger("cde_otel.health")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every response carries Content-Length
    # Headers and body are two writes; with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms on Linux) on a keep-alive connection.
    disable_nagle_algorithm = True
    server_version = "cde-otel-health"
    sys_version = ""
    monitor: HealthMonitor  # set on the per-server subclass

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        try:
            status, body = self._route(path)
        except Exception as exc:  # answer 500, never kill the server thread or leak a traceback
            _log.exception("health endpoint %s failed", path)
            status, body = HTTPStatus.INTERNAL_SERVER_ERROR, {"status": "error", "error": error_summary(exc)}
        self._send(status, body)

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

    def _send(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        payload = json.dumps(body, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s " + format, self.address_string(), *args)


class HealthServer:
    """A running health server; ``stop()`` shuts it down and closes the socket."""

    def __init__(self, monitor: HealthMonitor, host: str, port: int) -> None:
        handler = type("HealthHandler", (_Handler,), {"monitor": monitor})
        self.monitor = monitor
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self.host = host
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="cde-otel-health", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> HealthServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def start_health_server(port: int = 0, host: str = "127.0.0.1", monitor: HealthMonitor | None = None) -> HealthServer:
    """Serves the health endpoints in a daemon thread (``port=0`` picks a free port)."""
    return HealthServer(monitor or default_monitor(), host, port)
