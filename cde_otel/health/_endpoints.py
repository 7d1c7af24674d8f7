"""What each health endpoint answers, and where: on the event loop when it costs next to nothing, else a worker.

Liveness, 404, 405 and a readiness that :meth:`HealthMonitor.readiness_now` can answer from its
caches are answered on the loop, without a thread hand-off. The status and metrics documents, a
readiness whose probes must run, and a monitor that overrides :meth:`HealthMonitor.readiness`
go to the worker pool; the answer comes back to the loop through ``call_soon_threadsafe``. A
failure inside an endpoint answers 500 with a coded error and no traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING

from cde_otel._version import __version__
from cde_otel.health._http import Request, error_body, json_body
from cde_otel.health._mcp_tool import error_summary
from cde_otel.health._monitor import HealthMonitor

if TYPE_CHECKING:
    from cde_otel.health._connection import Connection

_log = logging.getLogger("cde_otel.health")

ALLOWED_METHODS = ("GET", "HEAD")
_ALLOW = (("Allow", ", ".join(ALLOWED_METHODS)),)
_ALIVE = json.dumps({"status": "alive", "version": __version__}).encode()
_READY = json.dumps({"status": "ready"}).encode()

Answer = tuple[HTTPStatus, bytes]


def _readiness_answer(verdict: tuple[bool, list[str]]) -> Answer:
    ready, reasons = verdict
    if ready:
        return HTTPStatus.OK, _READY
    return HTTPStatus.SERVICE_UNAVAILABLE, json_body({"status": "not_ready", "reasons": reasons})


def _normal_path(path: str) -> str:
    return path.rstrip("/") or "/"


class Endpoints:
    """Routes requests to the monitor; ``submit`` runs a job on a worker, ``loop`` is the connections' loop."""

    def __init__(
        self, monitor: HealthMonitor, loop: asyncio.AbstractEventLoop, submit: Callable[[Callable[[], None]], None]
    ) -> None:
        self.monitor = monitor
        self._loop = loop
        self._submit = submit

    def dispatch(self, conn: Connection, request: Request, keep_alive: bool) -> None:
        """Answers ``request`` on ``conn``: at once, or marks it busy and answers from a worker."""
        if request.method not in ALLOWED_METHODS:
            body = error_body(f"method {request.method} is not allowed")
            conn.reply(HTTPStatus.METHOD_NOT_ALLOWED, body, keep_alive, headers=_ALLOW)
            return
        send_body = request.method != "HEAD"
        path = _normal_path(request.path)
        answer = self.answer_now(path)
        if answer is not None:
            conn.reply(*answer, keep_alive, send_body=send_body)
            return
        conn.busy = True
        conn.stop_reading()  # pipelined requests wait in the socket until this one is answered
        self._submit(lambda: self._answer_in_worker(conn, path, keep_alive, send_body))

    def answer_now(self, path: str) -> Answer | None:
        """The answer if it costs next to nothing (no probe, no lock), else None: a worker answers."""
        if path == "/health":
            return HTTPStatus.OK, _ALIVE
        if path == "/health/ready":
            try:
                verdict = self.monitor.readiness_now(self._submit)  # refreshes on the workers: no thread start here
            except Exception:  # let a worker run readiness() and report its error the usual way
                return None
            return None if verdict is None else _readiness_answer(verdict)
        if path in ("/health/metrics", "/health/status"):
            return None
        return HTTPStatus.NOT_FOUND, error_body(f"no endpoint {path}")

    def answer(self, path: str) -> Answer:
        """The answer, whatever it costs (in a worker)."""
        if path == "/health/ready":
            return _readiness_answer(self.monitor.readiness())
        if path == "/health/metrics":
            return HTTPStatus.OK, json_body(self.monitor.metrics())
        if path == "/health/status":
            return HTTPStatus.OK, json_body(self.monitor.get_status())
        answer = self.answer_now(path)
        assert answer is not None
        return answer

    def _answer_in_worker(self, conn: Connection, path: str, keep_alive: bool, send_body: bool) -> None:
        if conn.closed:  # stopped (or timed out) while queued: nobody to answer
            return
        try:
            status, body = self.answer(path)
        except Exception as exc:  # answer 500, never kill a worker or leak a traceback
            _log.exception("health endpoint %s failed", path)
            status, body = HTTPStatus.INTERNAL_SERVER_ERROR, json_body({"status": "error", "error": error_summary(exc)})
        with contextlib.suppress(RuntimeError):  # the loop already ended: the connection is closed
            self._loop.call_soon_threadsafe(conn.answered, status, body, keep_alive, send_body)
