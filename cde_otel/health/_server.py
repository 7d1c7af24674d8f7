"""HTTP health endpoints, served from one event-loop thread and a small pool of workers.

    from cde_otel.health import start_health_server

    server = start_health_server(port=0)        # 127.0.0.1, a free port
    server.url                                  # "http://127.0.0.1:54321"
    server.stop()                               # graceful: requests in progress are answered first

* ``GET /health`` — liveness: always 200 ``{"status": "alive", ...}`` while the process serves.
* ``GET /health/ready`` — readiness: 200 ``{"status": "ready"}``, or 503
  ``{"status": "not_ready", "reasons": [...]}`` when read-only, disk critical, the state is
  not writable, or it cannot be loaded and no backup would restore it.
* ``GET /health/metrics`` — the ``metrics`` block of the status.
* ``GET /health/status`` — the full status document.
* ``HEAD`` on each answers the same status and headers without a body; any other method is
  405 with ``Allow: GET, HEAD``.

A failure inside a handler answers 500 with a coded error and no traceback. HTTP/1.1
keep-alive and pipelining are supported; the HTTP spoken is in :mod:`cde_otel.health._http`.

Under load it stays bounded and cheap (issue 15). The listen ``backlog`` is 1024 (the
kernel caps it at ``net.core.somaxconn``). One thread runs an ``asyncio`` selector loop that
accepts, reads and writes every connection, so idle keep-alive and half-sent connections
hold no thread; a connection silent for ``read_timeout_s`` (10 s) is closed. Liveness, 404,
405 and — whenever :meth:`HealthMonitor.readiness_now` can answer from its caches — readiness
are answered on the loop itself, without a thread hand-off: a burst of connections costs one
accept, one read, one write and one close each. Everything else (the status and metrics
documents, a readiness whose probes must run) goes to a fixed pool of ``workers`` daemon
threads (4). Beyond ``connection_limit`` (1000) open connections the server stops accepting
and new ones wait in the backlog. Request head and body are capped at 64 KiB (431, 413).
Errors go to the ``cde_otel.health`` logger, never to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from cde_otel._exceptions import ValidationError
from cde_otel._version import __version__
from cde_otel.health._http import HTTPError, Request, head_length, parse_head, response, skip_empty_lines
from cde_otel.health._mcp_tool import default_monitor, error_summary
from cde_otel.health._monitor import HealthMonitor

_log = logging.getLogger("cde_otel.health")

READ_TIMEOUT_S = 10.0
WORKERS = 4
BACKLOG = 1024
CONNECTION_LIMIT = 1000
#: Linux holds a connection that has sent nothing yet in the kernel this long before accept() sees it.
DEFER_ACCEPT_S = 1
#: Largest request head plus body accepted; health requests carry no body.
MAX_REQUEST_BYTES = 64 * 1024
ALLOWED_METHODS = ("GET", "HEAD")
_ALLOW = (("Allow", ", ".join(ALLOWED_METHODS)),)
#: Connections accepted per wake-up of the loop, so registered connections are served in between.
_ACCEPT_BATCH = 64
_RECV_BYTES = 16 * 1024
#: Out of file descriptors or memory: stop accepting for a moment instead of spinning.
_ACCEPT_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

_ALIVE = json.dumps({"status": "alive", "version": __version__}).encode()
_READY = json.dumps({"status": "ready"}).encode()


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, default=str).encode()


def _error_body(message: str) -> bytes:
    return _json({"status": "error", "error": {"message": message}})


def _readiness_answer(verdict: tuple[bool, list[str]]) -> tuple[HTTPStatus, bytes]:
    ready, reasons = verdict
    if ready:
        return HTTPStatus.OK, _READY
    return HTTPStatus.SERVICE_UNAVAILABLE, _json({"status": "not_ready", "reasons": reasons})


def _normal_path(path: str) -> str:
    return path.rstrip("/") or "/"


@dataclass(eq=False, slots=True)
class _Connection:
    sock: socket.socket
    fd: int
    last_active: float
    buffer: bytes = b""  # received, not yet parsed
    output: bytes = b""  # answer not yet sent
    busy: bool = False  # a worker is answering its request
    reading: bool = False  # registered with the loop for reading
    writing: bool = False
    close_after: bool = False  # close once the output is sent
    draining: bool = False  # answered and half-closed: input is dropped until the client closes
    closed: bool = False

    @property
    def idle(self) -> bool:
        """Open, and ready to take its next request: nothing being answered, nothing left to send."""
        return not (self.busy or self.output or self.closed or self.draining)


class _Workers:
    """A fixed set of daemon threads running jobs from one queue (daemon: a stuck probe never blocks exit)."""

    def __init__(self, count: int) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"cde-otel-health-{index}", daemon=True) for index in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()  # each job handles its own errors

    def stop(self, timeout: float) -> None:
        """Lets the jobs already queued run (a probe refresh must report back), then ends the threads."""
        for _ in self._threads:
            self._jobs.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def _valid_port(port: object) -> int:
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ValidationError(
            f"port must be a whole number from 0 to 65535, not {port!r}", "E305", {"field": "port", "value": str(port)}
        )
    return port


class _Listener(socket.socket):
    """A listening socket whose ``accept()`` does not derive its own family and type anew on every call."""

    def __init__(self, family: int, kind: int, proto: int) -> None:
        super().__init__(family, kind, proto)
        self._kinds = (socket.AddressFamily(family), socket.SocketKind(kind))

    @property
    def family(self) -> socket.AddressFamily:
        return self._kinds[0]

    @property
    def type(self) -> socket.SocketKind:
        return self._kinds[1]


def _listen(host: str, port: int, backlog: int) -> socket.socket:
    """A non-blocking listening socket on ``host``:``port``; the OSError of a failed bind is raised as is."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[
        0
    ]
    sock = _Listener(family, kind, proto)
    try:
        if os.name == "posix":  # a restarted server may rebind while old connections are in TIME_WAIT
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
        # Accepted sockets inherit it (on Linux): pipelined and keep-alive answers are not held back by Nagle.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if hasattr(socket, "TCP_DEFER_ACCEPT"):  # Linux: wake accept() when the request is there, not at the SYN
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, DEFER_ACCEPT_S)
    except BaseException:
        sock.close()
        raise
    return sock


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
        self.connection_limit = max(1, int(connection_limit))
        # Idle connections are looked for this often, so they are closed at most one tick late.
        self._tick = min(1.0, max(0.05, self.read_timeout_s / 10))
        self._listener = _listen(host, _valid_port(port), backlog)
        self.host = host
        self.port: int = int(self._listener.getsockname()[1])
        self._connections: dict[int, _Connection] = {}
        self._accepting = False
        self._stopping = False
        self._stop_lock = threading.Lock()
        self._stop_requested = False
        self._loop = asyncio.SelectorEventLoop()  # ours, whatever event loop policy the host set
        self._loop.set_exception_handler(self._loop_error)
        self._workers = _Workers(self.workers)
        self._thread = threading.Thread(target=self._run, name="cde-otel-health", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- lifecycle -----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._resume_accepting()
            self._loop.call_later(self._tick, self._sweep)
            self._loop.run_forever()
        finally:
            for conn in list(self._connections.values()):
                self._close(conn)
            self._close_listener()
            self._loop.close()

    def stop(self, grace_s: float = 5.0) -> None:
        """Stops accepting, lets requests in progress finish (up to ``grace_s``), and closes every socket."""
        with self._stop_lock:
            if self._stop_requested:
                return
            self._stop_requested = True
        with contextlib.suppress(RuntimeError):  # the loop already ended
            self._loop.call_soon_threadsafe(self._begin_stop, time.monotonic() + grace_s)
        self._thread.join(timeout=grace_s + 5)
        self._workers.stop(timeout=grace_s)

    def __enter__(self) -> HealthServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _begin_stop(self, deadline: float) -> None:
        self._stopping = True
        self._close_listener()
        for conn in list(self._connections.values()):
            if not conn.busy and not conn.output:
                self._close(conn)  # nothing taken in to answer
        self._stop_when_quiet(deadline)

    def _stop_when_quiet(self, deadline: float) -> None:
        if self._connections and time.monotonic() < deadline:
            self._loop.call_later(0.02, self._stop_when_quiet, deadline)
            return
        for conn in list(self._connections.values()):
            self._close(conn)
        self._loop.stop()

    def _close_listener(self) -> None:
        if self._listener.fileno() >= 0:
            self._pause_accepting()
            self._listener.close()

    def _loop_error(self, _loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        _log.error("health server: %s", context.get("message"), exc_info=context.get("exception"))

    # -- accepting -----------------------------------------------------------------------
    def _resume_accepting(self) -> None:
        if not self._accepting and not self._stopping and self._listener.fileno() >= 0:
            self._loop.add_reader(self._listener.fileno(), self._accept)
            self._accepting = True

    def _pause_accepting(self) -> None:
        if self._accepting:
            self._loop.remove_reader(self._listener.fileno())
            self._accepting = False

    def _accept(self) -> None:
        for _ in range(_ACCEPT_BATCH):
            if len(self._connections) >= self.connection_limit:
                self._pause_accepting()  # the rest wait in the backlog until a connection closes
                return
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _ACCEPT_RESOURCE_ERRORS:
                    _log.warning("health server cannot accept a connection: %s; pausing %.2fs", exc, self._tick)
                    self._pause_accepting()
                    self._loop.call_later(self._tick, self._resume_accepting)
                return  # anything else (ECONNABORTED...) concerned that one connection only
            sock.setblocking(False)
            conn = _Connection(sock, sock.fileno(), time.monotonic())
            self._connections[conn.fd] = conn
            self._read(conn)  # a client usually sends its request with the handshake: no wait for the loop

    # -- reading -------------------------------------------------------------------------
    def _want_read(self, conn: _Connection) -> None:
        if not conn.reading and not conn.closed:
            self._loop.add_reader(conn.fd, self._read, conn)
            conn.reading = True

    def _stop_reading(self, conn: _Connection) -> None:
        if conn.reading:
            self._loop.remove_reader(conn.fd)
            conn.reading = False

    def _read(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(_RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            self._want_read(conn)
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            self._close(conn)  # the client closed (or half-closed: it expects no answer it has not asked for)
            return
        if conn.draining:
            return  # dropped; the read timeout still counts from the refusal
        conn.last_active = time.monotonic()
        conn.buffer += data
        try:
            self._process(conn)
        except Exception:  # a bug here must cost one connection, never the loop
            _log.exception("health server: failed to handle a request")
            self._close(conn)

    def _process(self, conn: _Connection) -> None:
        """Answers the complete requests buffered on ``conn``, one at a time, in order."""
        while conn.idle:
            buffer = skip_empty_lines(conn.buffer)
            end = head_length(buffer)
            if end < 0:
                conn.buffer = buffer
                if len(buffer) > MAX_REQUEST_BYTES:
                    self._refuse(conn, HTTPError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large"))
                else:
                    self._want_read(conn)
                return
            try:
                request = parse_head(buffer[:end])
            except HTTPError as error:
                self._refuse(conn, error)
                return
            total = end + request.body_length
            if total > MAX_REQUEST_BYTES:
                self._refuse(conn, HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "health requests take no body"))
                return
            if len(buffer) < total:
                conn.buffer = buffer
                self._want_read(conn)
                return
            conn.buffer = buffer[total:]
            self._dispatch(conn, request)  # not idle after it: a worker or the writable callback carries on
            if conn.idle and (conn.close_after or self._stopping):
                self._close(conn)

    # -- answering -----------------------------------------------------------------------
    def _dispatch(self, conn: _Connection, request: Request) -> None:
        keep_alive = request.keep_alive and not self._stopping
        send_body = request.method != "HEAD"
        if request.method not in ALLOWED_METHODS:
            body = _error_body(f"method {request.method} is not allowed")
            self._send(
                conn, response(HTTPStatus.METHOD_NOT_ALLOWED, body, keep_alive=keep_alive, headers=_ALLOW), keep_alive
            )
            return
        path = _normal_path(request.path)
        answer = self._answer_now(path)
        if answer is not None:
            status, body = answer
            self._send(conn, response(status, body, keep_alive=keep_alive, send_body=send_body), keep_alive)
            return
        conn.busy = True
        self._stop_reading(conn)  # pipelined requests wait in the socket until this one is answered
        self._workers.submit(lambda: self._answer_in_worker(conn, path, keep_alive, send_body))

    def _answer_now(self, path: str) -> tuple[HTTPStatus, bytes] | None:
        """The answer if it costs next to nothing (no probe, no lock), else None: a worker answers."""
        if path == "/health":
            return HTTPStatus.OK, _ALIVE
        if path == "/health/ready":
            try:
                verdict = self.monitor.readiness_now(self._workers.submit)  # refreshes: no thread start here
            except Exception:  # let a worker run readiness() and report its error the usual way
                return None
            return None if verdict is None else _readiness_answer(verdict)
        if path in ("/health/metrics", "/health/status"):
            return None
        return HTTPStatus.NOT_FOUND, _error_body(f"no endpoint {path}")

    def _route(self, path: str) -> tuple[HTTPStatus, bytes]:
        if path == "/health/ready":
            return _readiness_answer(self.monitor.readiness())
        if path == "/health/metrics":
            return HTTPStatus.OK, _json(self.monitor.metrics())
        if path == "/health/status":
            return HTTPStatus.OK, _json(self.monitor.get_status())
        answer = self._answer_now(path)
        assert answer is not None
        return answer

    def _answer_in_worker(self, conn: _Connection, path: str, keep_alive: bool, send_body: bool) -> None:
        if conn.closed:  # stopped (or timed out) while queued: nobody to answer
            return
        try:
            status, body = self._route(path)
        except Exception as exc:  # answer 500, never kill a worker or leak a traceback
            _log.exception("health endpoint %s failed", path)
            status, body = HTTPStatus.INTERNAL_SERVER_ERROR, _json({"status": "error", "error": error_summary(exc)})
        with contextlib.suppress(RuntimeError):  # the loop already ended: the connection is closed
            self._loop.call_soon_threadsafe(self._answered, conn, status, body, keep_alive, send_body)

    def _answered(self, conn: _Connection, status: HTTPStatus, body: bytes, keep_alive: bool, send_body: bool) -> None:
        conn.busy = False
        if conn.closed:
            return
        keep_alive = keep_alive and not self._stopping  # stopping since: say so, and close after it
        self._send(conn, response(status, body, keep_alive=keep_alive, send_body=send_body), keep_alive)
        if not (conn.output or conn.closed):
            self._after_answer(conn)

    def _refuse(self, conn: _Connection, error: HTTPError) -> None:
        """Answers a request that cannot be read, then half-closes: what the client sent after it is dropped."""
        self._stop_reading(conn)
        conn.buffer = b""
        conn.draining = True
        self._send(conn, response(error.status, _error_body(error.message), keep_alive=False), keep_alive=False)
        if not (conn.output or conn.closed):
            self._after_answer(conn)

    def _send(self, conn: _Connection, payload: bytes, keep_alive: bool) -> None:
        """Sends what the socket takes now; the rest when it is writable (the caller handles a complete send)."""
        conn.close_after = not keep_alive
        conn.output = payload
        self._flush(conn)

    def _flush(self, conn: _Connection) -> None:
        try:
            sent = conn.sock.send(conn.output)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close(conn)
            return
        if sent:
            conn.last_active = time.monotonic()
        conn.output = conn.output[sent:]
        if conn.output:
            if not conn.writing:  # the client reads slowly: wait until its socket takes more
                self._stop_reading(conn)
                self._loop.add_writer(conn.fd, self._writable, conn)
                conn.writing = True
            return
        if conn.writing:
            self._loop.remove_writer(conn.fd)
            conn.writing = False

    def _writable(self, conn: _Connection) -> None:
        self._flush(conn)
        if not (conn.output or conn.closed):
            self._after_answer(conn)

    def _after_answer(self, conn: _Connection) -> None:
        """Once an answer is out (never called from inside ``_process``, which loops instead)."""
        if conn.draining:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_WR)  # the answer is out; a reset now could discard it
            self._want_read(conn)  # until the client closes, or the read timeout
        elif conn.close_after or self._stopping:
            self._close(conn)
        else:
            self._process(conn)  # the next pipelined request, or wait for one

    def _close(self, conn: _Connection) -> None:
        if conn.closed:
            return
        conn.closed = True
        self._stop_reading(conn)
        if conn.writing:
            self._loop.remove_writer(conn.fd)
            conn.writing = False
        del self._connections[conn.fd]
        conn.sock.close()
        if len(self._connections) < self.connection_limit:
            self._resume_accepting()

    def _sweep(self) -> None:
        """Closes connections silent for ``read_timeout_s`` (idle keep-alive, half-sent, or not reading)."""
        silent_since = time.monotonic() - self.read_timeout_s
        for conn in list(self._connections.values()):
            if not conn.busy and conn.last_active <= silent_since:
                self._close(conn)
        self._loop.call_later(self._tick, self._sweep)


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
    ``workers``: threads answering the requests that need a probe (reading them takes none).
    """
    return HealthServer(monitor or default_monitor(), host, port, read_timeout_s=read_timeout_s, workers=workers)
