"""Bursts of simultaneous connections, measured by ApacheBench, and the floor they are compared to.

    result = ab_burst(port, connections=200)      # one GET per connection, all opened at once
    result.latencies_ms, result.failures
    with BareServer() as bare: ...                 # the cheapest CPython HTTP responder, for the ratio
    with cpus({0}): ...                            # threads started inside run on CPU 0 only

**The client is ``ab``** (ApacheBench 2.3, Debian's ``apache2-utils``; ``scripts/install-backends.sh``
installs it). With ``-n N -c N`` it opens all N connections at once, non-blocking, from one C
event loop, sends one ``GET`` on each as soon as it connects (HTTP/1.0, no keep-alive), and
records each request from the start of its own ``connect()`` to the end of its response (the
server's close): listen-queue waits and dropped SYNs count. Its ``-g`` file has that time per
request, rounded to the millisecond. A refused, reset or unanswered connection, a response
of another length or a non-2xx status is a failure, and so is every request of a run that
``ab`` aborted (``-s``: no progress for that many seconds). In C it costs a fraction of a
Python client per request, so the figure is the server's, not the load generator's
(``docs/benchmarks.md`` has the comparison).

**The floor** (:class:`BareServer`) shares no code with cde-otel: one thread, one ``selectors``
loop, accept, read to the blank line, send a fixed 200 with the same body as ``/health/ready``,
close. No parsing, no routing, no checks — nothing a CPython server could skip. It gets the same
kernel help as the health server (backlog 1024, ``TCP_DEFER_ACCEPT``), so the ratio is the
Python work per request, not a socket option.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import selectors
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

AB_ENV = "CDE_OTEL_AB_BIN"
_INSTALL = Path(__file__).resolve().parents[1] / "scripts" / "install-backends.sh"


def ab_binary() -> str:
    """``$CDE_OTEL_AB_BIN``, else ``ab`` on PATH or in /usr/bin; a clear error when it is not installed."""
    found = os.environ.get(AB_ENV) or shutil.which("ab") or ("/usr/bin/ab" if os.access("/usr/bin/ab", os.X_OK) else "")
    if not found or not os.access(found, os.X_OK):
        raise RuntimeError(f"ApacheBench (ab, Debian package apache2-utils) is not installed; run: bash {_INSTALL}")
    return found


@dataclass
class Burst:
    """One ``ab`` run: the latency of every completed request, and how many requests failed."""

    requests: int
    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0
    errors: list[str] = field(default_factory=list)
    client_cpu_s: float = 0.0


def _count(pattern: str, text: str) -> int:
    match = re.search(pattern, text)
    return int(match.group(1)) if match else 0


def ab_burst(port: int, connections: int, path: str = "/health/ready", timeout_s: float = 10.0) -> Burst:
    """``connections`` connections to 127.0.0.1:``port`` opened at once, one GET each, measured by ab."""
    burst = Burst(requests=connections)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory(prefix="cde-ab-") as scratch:
        per_request = Path(scratch) / "requests.tsv"
        command = [ab_binary(), "-q", "-r", "-s", str(max(1, round(timeout_s))), "-n", str(connections),
                   "-c", str(connections), "-g", str(per_request), f"http://127.0.0.1:{port}{path}"]  # fmt: skip
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s * 3 + 30, check=False)
        rows = per_request.read_text().splitlines()[1:] if per_request.exists() else []
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    burst.client_cpu_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if proc.returncode != 0:  # aborted: count every request as failed, say why
        burst.failures = connections
        burst.errors.append(f"ab exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-300:]}")
        return burst
    # columns: starttime, seconds, ctime, dtime, ttime (connect start to response end, ms), wait
    burst.latencies_ms = [float(row.split("\t")[4]) for row in rows]
    failed = _count(r"Failed requests:\s+(\d+)", proc.stdout)
    non_2xx = _count(r"Non-2xx responses:\s+(\d+)", proc.stdout)
    missing = connections - len(rows)
    burst.failures = min(connections, failed + non_2xx + missing)
    if failed:
        burst.errors.append(" ".join(re.findall(r"\((Connect: .*?)\)", proc.stdout)) or f"{failed} failed")
    if non_2xx:
        burst.errors.append(f"{non_2xx} non-2xx responses")
    if missing:
        burst.errors.append(f"{missing} requests without a result")
    return burst


class BareServer:
    """The floor: the least a CPython HTTP server can do per connection, in one thread of this process."""

    BODY = b'{"status": "ready"}'
    RESPONSE = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
        % (len(BODY), BODY)
    )

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self._listener.setblocking(False)
        if hasattr(socket, "TCP_DEFER_ACCEPT"):  # as the health server: accept() once the request is there
            self._listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 1)
        self.port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name="bare-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ)
        selector.register(self._wake_r, selectors.EVENT_READ)
        received: dict[socket.socket, bytes] = {}

        def read(conn: socket.socket, registered: bool) -> None:
            try:
                data = conn.recv(16384)
            except BlockingIOError:
                if not registered:
                    received[conn] = b""
                    selector.register(conn, selectors.EVENT_READ)
                return
            except OSError:
                data = b""
            buffer = received.get(conn, b"") + data
            if data and b"\r\n\r\n" not in buffer:
                received[conn] = buffer
                if not registered:
                    selector.register(conn, selectors.EVENT_READ)
                return
            if data:
                with contextlib.suppress(OSError):
                    conn.send(self.RESPONSE)
            if registered:
                selector.unregister(conn)
            received.pop(conn, None)
            conn.close()

        try:
            while True:
                for key, _ in selector.select():
                    sock = key.fileobj
                    if sock is self._wake_r:
                        return
                    if sock is self._listener:
                        while True:
                            try:
                                conn, _ = self._listener.accept()
                            except (BlockingIOError, InterruptedError):
                                break
                            conn.setblocking(False)
                            read(conn, registered=False)  # the request usually came with the handshake
                    else:
                        assert isinstance(sock, socket.socket)
                        read(sock, registered=True)
        finally:
            for conn in received:
                conn.close()
            selector.close()

    def stop(self) -> None:
        self._wake_w.send(b"x")
        self._thread.join(10)
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()

    def __enter__(self) -> BareServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def cpus(wanted: set[int] | None) -> Iterator[set[int] | None]:
    """Runs the calling thread (and the threads and processes it starts meanwhile) on ``wanted`` CPUs only.

    Yields the CPUs actually used: None (no change) when ``wanted`` is None, or when this OS or
    this process's allowed set cannot honour it.
    """
    if wanted is None or not hasattr(os, "sched_setaffinity"):
        yield None
        return
    allowed = os.sched_getaffinity(0)
    if not wanted <= allowed:
        yield None
        return
    os.sched_setaffinity(0, wanted)
    try:
        yield wanted
    finally:
        os.sched_setaffinity(0, allowed)
