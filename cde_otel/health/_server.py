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
keep-alive and pipelining are supported; requests are parsed by llhttp (``httptools``), strictly
(:mod:`cde_otel.health._http`).

Under load it stays bounded and cheap. The listen ``backlog`` is 1024 (the
kernel caps it at ``net.core.somaxconn``). One thread runs an ``asyncio`` selector loop that
accepts, reads and writes every connection, so idle keep-alive and half-sent connections
hold no thread; a connection silent for ``read_timeout_s`` (10 s) is closed, and so is one whose
request is not complete ``head_timeout_s`` (5 s) after its first byte, however slowly its bytes
trickle in (slowloris). Liveness, 404,
405 and — whenever :meth:`HealthMonitor.readiness_now` can answer from its caches — readiness
are answered on the loop itself, without a thread hand-off: a burst of connections costs one
accept, one read, one write and one close each. Everything else (the status and metrics
documents, a readiness whose probes must run) goes to a fixed pool of ``workers`` daemon
threads (4). At ``connection_limit`` (1000) open connections a new one is still accepted, and
the connection that has waited longest without owing an answer (a half-sent request first, then
an idle keep-alive one) is closed for it, so ``/health`` keeps answering while an attacker holds
every slot; only when every connection is being answered do new ones wait in the backlog.
Request head and body are capped at 64 KiB each (431, 413).
Errors go to the ``cde_otel.health`` logger, never to stderr.

Inside: this module runs the loop, the listener and the lifecycle; ``_connection`` reads,
answers and writes one connection; ``_endpoints`` decides what each path answers and where;
``_workers`` is the pool; ``_http`` reads requests (llhttp) and renders responses.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import threading
import time
from typing import Any

from cde_otel._exceptions import ValidationError
from cde_otel.health._connection import Connection
from cde_otel.health._endpoints import Endpoints
from cde_otel.health._http import KnownReads, Request, ResponseHeads
from cde_otel.health._mcp_tool import default_monitor
from cde_otel.health._monitor import HealthMonitor
from cde_otel.health._workers import Workers

_log = logging.getLogger("cde_otel.health")

READ_TIMEOUT_S = 10.0
#: A request must be complete this long after its first byte, however its bytes trickle in.
HEAD_TIMEOUT_S = 5.0
WORKERS = 4
BACKLOG = 1024
CONNECTION_LIMIT = 1000
#: Linux holds a connection that has sent nothing yet in the kernel this long before accept() sees it.
DEFER_ACCEPT_S = 1
#: Connections accepted per wake-up of the loop, so registered connections are served in between.
_ACCEPT_BATCH = 64
#: Out of file descriptors or memory: stop accepting for a moment instead of spinning.
_ACCEPT_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


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
        head_timeout_s: float = HEAD_TIMEOUT_S,
    ) -> None:
        self.monitor = monitor
        self.read_timeout_s = float(read_timeout_s)
        self.head_timeout_s = float(head_timeout_s)
        self.workers = max(1, int(workers))
        self.connection_limit = max(1, int(connection_limit))
        # Idle and late connections are looked for this often, so they are closed at most one tick late.
        self._tick = min(1.0, max(0.05, min(self.read_timeout_s, self.head_timeout_s) / 10))
        self._listener = _listen(host, _valid_port(port), backlog)
        self.host = host
        self.port: int = int(self._listener.getsockname()[1])
        self._connections: dict[int, Connection] = {}
        self._accepting = False
        self._stopping = False
        self._stop_lock = threading.Lock()
        self._stop_requested = False
        self._loop = asyncio.SelectorEventLoop()  # ours, whatever event loop policy the host set
        self._loop.set_exception_handler(self._loop_error)
        self._workers = Workers(self.workers)
        self._endpoints = Endpoints(monitor, self._loop, self._workers.submit)
        self.heads = ResponseHeads()  # the response heads of this second
        self.known_reads: KnownReads = {}  # the reads known to be one whole request (see RequestReader)
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
                conn.close()
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
                conn.close()  # nothing taken in to answer
        self._stop_when_quiet(deadline)

    def _stop_when_quiet(self, deadline: float) -> None:
        if self._connections and time.monotonic() < deadline:
            self._loop.call_later(0.02, self._stop_when_quiet, deadline)
            return
        for conn in list(self._connections.values()):
            conn.close()
        self._loop.stop()

    def _close_listener(self) -> None:
        if self._listener.fileno() >= 0:
            self._pause_accepting()
            self._listener.close()

    def _loop_error(self, _loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        _log.error("health server: %s", context.get("message"), exc_info=context.get("exception"))

    # -- what a connection asks of its server (ConnectionOwner) ------------------------------
    @property
    def stopping(self) -> bool:
        return self._stopping

    def dispatch(self, conn: Connection, request: Request) -> None:
        self._endpoints.dispatch(conn, request, keep_alive=request.keep_alive and not self._stopping)

    def forget(self, conn: Connection) -> None:
        del self._connections[conn.fd]
        if len(self._connections) < self.connection_limit:
            self._resume_accepting()

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
            victim: Connection | None = None
            if len(self._connections) >= self.connection_limit:
                victim = self._eviction_candidate()
                if victim is None:
                    self._pause_accepting()  # every connection owes an answer: the rest wait in the backlog
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
            if victim is not None:
                victim.close()  # makes room for the one just accepted
            sock.setblocking(False)
            conn = Connection(sock, self._loop, self)
            self._connections[conn.fd] = conn
            conn.read()  # a client usually sends its request with the handshake: no wait for the loop

    def _eviction_candidate(self) -> Connection | None:
        """The connection that waited longest without owing an answer (closed to make room), or None.

        A half-sent request goes first (oldest first byte), then an idle keep-alive connection (oldest
        activity): at the cap, a new client such as a liveness probe gets in instead of waiting behind them.
        """
        victim: Connection | None = None
        victim_key = (2, 0.0)
        for conn in self._connections.values():
            if conn.busy or conn.output:
                continue
            key = (0, conn.head_started) if conn.head_started is not None else (1, conn.last_active)
            if key < victim_key:
                victim, victim_key = conn, key
        return victim

    def _sweep(self) -> None:
        """Closes connections silent for ``read_timeout_s`` (idle keep-alive, half-sent, or not reading), and
        those whose request is not complete ``head_timeout_s`` after its first byte (trickled bytes or not)."""
        now = time.monotonic()
        silent_since, head_since = now - self.read_timeout_s, now - self.head_timeout_s
        for conn in list(self._connections.values()):
            if conn.busy:
                continue
            if conn.last_active <= silent_since or (conn.head_started is not None and conn.head_started <= head_since):
                conn.close()
        self._loop.call_later(self._tick, self._sweep)


def start_health_server(
    port: int = 0,
    host: str = "127.0.0.1",
    monitor: HealthMonitor | None = None,
    *,
    read_timeout_s: float = READ_TIMEOUT_S,
    workers: int = WORKERS,
    head_timeout_s: float = HEAD_TIMEOUT_S,
    connection_limit: int = CONNECTION_LIMIT,
) -> HealthServer:
    """Serves the health endpoints in daemon threads (``port=0`` picks a free port).

    ``read_timeout_s``: a connection that sends nothing for this long is closed.
    ``head_timeout_s``: a request not complete this long after its first byte is closed.
    ``connection_limit``: open connections at most (beyond it the longest-waiting one makes room).
    ``workers``: threads answering the requests that need a probe (reading them takes none).
    """
    return HealthServer(
        monitor or default_monitor(),
        host,
        port,
        read_timeout_s=read_timeout_s,
        workers=workers,
        head_timeout_s=head_timeout_s,
        connection_limit=connection_limit,
    )
