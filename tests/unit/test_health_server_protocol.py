"""The health server over real loopback sockets: pipelining, slow senders and readers, refusals,
the connection limit, graceful stop, and readiness answered from the monitor's caches.

Behaviour only (what a client receives, and when a connection closes); no timings are asserted.
"""

from __future__ import annotations

import json
import select
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cde_otel.core import FileSystemProjectRepository
from cde_otel.health import HealthMonitor, HealthServer, start_health_server
from cde_otel.health._connection import Connection
from cde_otel.health._http import MAX_HEAD_BYTES, RequestReader
from cde_otel.settings import load_settings

DEADLINE_S = 15.0
CALM = load_settings({}, alert_disk_free_mb=0.001, alert_memory_percent=99.99)
GET_READY = b"GET /health/ready HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    repo = FileSystemProjectRepository()
    project = repo.get_or_create(project_dir)
    project.activate()
    repo.save(project)
    return project_dir


@pytest.fixture
def server(project_dir: Path) -> Iterator[HealthServer]:
    with start_health_server(port=0, monitor=HealthMonitor(project_dir, settings=CALM)) as running:
        yield running


def connect(server: HealthServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE_S)


def read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, dict[str, str], bytes]:
    """One response from ``sock`` (``buffer`` keeps what arrived after it): status, fields, body."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a response head: {bytes(buffer)!r}"
        buffer += chunk
    head, _, _ = bytes(buffer).partition(b"\r\n\r\n")
    del buffer[: len(head) + 4]
    lines = head.decode("latin-1").split("\r\n")
    fields = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines[1:])}
    length = int(fields["content-length"])
    while len(buffer) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed in the middle of a body"
        buffer += chunk
    body = bytes(buffer[:length])
    del buffer[:length]
    return int(lines[0].split(" ")[1]), fields, body


def until(condition: Callable[[], bool], timeout: float = DEADLINE_S) -> bool:
    """Polls ``condition`` until it holds (True) or ``timeout`` passes (False)."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= end:
            return False
        time.sleep(0.005)
    return True


def closed_by_peer(sock: socket.socket, timeout: float = DEADLINE_S) -> bool:
    """True once the server closes ``sock`` (EOF or reset), False if it stays open for ``timeout``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        readable, _, _ = select.select([sock], [], [], max(0.0, end - time.monotonic()))
        if not readable:
            return False
        try:
            if sock.recv(65536) == b"":
                return True
        except OSError:
            return True
    return False


def test_pipelined_requests_are_answered_in_order(server: HealthServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\nGET /health/ready HTTP/1.1\r\n\r\n")
        buffer = bytearray()
        statuses = [read_response(sock, buffer)[0] for _ in range(3)]

    assert statuses == [200, 404, 200]


def test_a_request_sent_byte_by_byte_is_answered(server: HealthServer) -> None:
    with connect(server) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in GET_READY:
            sock.send(bytes([byte]))
        status, _, body = read_response(sock, bytearray())

    assert (status, json.loads(body)) == (200, {"status": "ready"})


def test_a_body_is_read_and_ignored_and_the_connection_stays_usable(server: HealthServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"POST /health/ready HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello" + GET_READY)
        buffer = bytearray()
        refused, fields, _ = read_response(sock, buffer)
        answered, _, body = read_response(sock, buffer)

    assert refused == 405 and fields["allow"] == "GET, HEAD"
    assert (answered, json.loads(body)) == (200, {"status": "ready"})


def test_http_1_0_keep_alive_is_honoured(server: HealthServer) -> None:
    with connect(server) as sock:
        buffer = bytearray()
        sock.sendall(b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        first, fields, _ = read_response(sock, buffer)
        sock.sendall(b"GET /health HTTP/1.0\r\n\r\n")
        second, last_fields, _ = read_response(sock, buffer)

        assert (first, fields["connection"]) == (200, "keep-alive")
        assert (second, last_fields["connection"]) == (200, "close")
        assert closed_by_peer(sock)


def test_an_upgrade_request_is_answered_in_http_1_1_then_closed(server: HealthServer) -> None:
    # What `curl --http2 http://...` sends; the server may ignore the upgrade (RFC 9110 §7.8), and does.
    with connect(server) as sock:
        sock.sendall(
            b"GET /health/ready HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
            b"HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n"
        )
        status, fields, body = read_response(sock, bytearray())

        assert (status, fields["connection"], json.loads(body)) == (200, "close", {"status": "ready"})
        assert closed_by_peer(sock)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"NONSENSE\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"POST /health HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501),
        (b"POST /health HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"POST /health HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n", 413),
        (b"GET /health HTTP/1.1\r\nX-Long: " + b"a" * (MAX_HEAD_BYTES + 10), 431),
        (b"GET /health HTTP/1.1\r\nX-Long: " + b"a" * (MAX_HEAD_BYTES + 10) + b"\r\n\r\n", 431),
        (b"CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n", 400),
    ],
)
def test_unreadable_requests_get_their_status_and_the_connection_is_closed(
    server: HealthServer, raw: bytes, status: int
) -> None:
    with connect(server) as sock:
        sock.sendall(raw)
        answered, fields, body = read_response(sock, bytearray())
        sock.sendall(GET_READY)  # ignored: the server answers nothing more on this connection

        assert (answered, fields["connection"]) == (status, "close")
        assert json.loads(body)["status"] == "error"
        assert closed_by_peer(sock)


def test_a_refused_client_that_keeps_sending_is_closed_after_the_read_timeout(project_dir: Path) -> None:
    monitor = HealthMonitor(project_dir, settings=CALM)
    with start_health_server(port=0, monitor=monitor, read_timeout_s=0.5) as srv, connect(srv) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        assert read_response(sock, bytearray())[0] == 400
        deadline = time.monotonic() + DEADLINE_S
        with pytest.raises(OSError):  # reset or broken pipe once the server has closed its end
            while time.monotonic() < deadline:
                sock.sendall(b"more garbage ")
                time.sleep(0.02)


def test_a_slow_reader_gets_every_byte(server: HealthServer, monkeypatch: pytest.MonkeyPatch) -> None:
    resumed: list[int] = []
    writable = Connection.writable

    def counted(self: Connection) -> None:
        resumed.append(1)
        writable(self)

    monkeypatch.setattr(Connection, "writable", counted)
    # Small kernel buffers on both sides (accepted sockets inherit the listener's): the answers back up.
    server._listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
    requests = 20_000  # about 4 MB of answers
    with connect(server) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
        sender = threading.Thread(target=sock.sendall, args=(b"GET /health HTTP/1.1\r\n\r\n" * requests,))
        sender.start()
        sender.join(0.5)  # a reader that does not read yet: the server stops reading while its answers wait
        buffer = bytearray()
        answers = [read_response(sock, buffer) for _ in range(requests)]
        sender.join(DEADLINE_S)

    assert all(status == 200 and json.loads(body)["status"] == "alive" for status, _, body in answers)
    assert resumed, "the server never had to wait for the reader"


def test_at_the_connection_limit_a_new_connection_takes_the_place_of_the_oldest_half_sent_one(
    project_dir: Path,
) -> None:
    monitor = HealthMonitor(project_dir, settings=CALM)
    with HealthServer(monitor, "127.0.0.1", 0, connection_limit=5) as limited:
        held = [connect(limited) for _ in range(5)]
        try:
            for sock in held:
                sock.sendall(b"GET /health HTTP/1.1\r\n")  # half a request each: all five stay open
                time.sleep(0.01)  # distinct first-byte times: the first one sent is the oldest
            for sock in held:  # each was accepted (its request is being read)
                assert not closed_by_peer(sock, timeout=0.05)
            with connect(limited) as newcomer:
                newcomer.sendall(GET_READY)
                status, _, _ = read_response(newcomer, bytearray())
            assert closed_by_peer(held[0], timeout=DEADLINE_S), "the oldest half-sent connection was kept"
            assert not any(closed_by_peer(sock, timeout=0.05) for sock in held[1:])
        finally:
            for sock in held:
                sock.close()

    assert status == 200


def test_stop_answers_a_request_in_progress_first(project_dir: Path) -> None:
    inside = threading.Event()
    release = threading.Event()

    class SlowStatus(HealthMonitor):
        def get_status(self) -> dict[str, object]:
            inside.set()
            release.wait(DEADLINE_S)
            return super().get_status()

    srv = start_health_server(port=0, monitor=SlowStatus(project_dir, settings=CALM))
    with connect(srv) as sock:
        sock.sendall(b"GET /health/status HTTP/1.1\r\n\r\n")
        assert inside.wait(DEADLINE_S)
        stopper = threading.Thread(target=srv.stop)
        stopper.start()
        try:
            with pytest.raises(OSError):  # no longer accepting
                for _ in range(100):
                    socket.create_connection(("127.0.0.1", srv.port), timeout=1).close()
                    time.sleep(0.01)
        finally:
            release.set()
        status, fields, _ = read_response(sock, bytearray())
        stopper.join(DEADLINE_S)

    assert (status, fields["connection"]) == (200, "close")
    assert not stopper.is_alive()


def test_readiness_follows_the_state_file_between_requests(project_dir: Path, server: HealthServer) -> None:
    state = project_dir / ".cde" / "state.json"
    shutil.rmtree(project_dir / ".cde" / "backups")
    good = state.read_bytes()
    with connect(server) as sock:
        buffer = bytearray()
        sock.sendall(GET_READY)
        assert read_response(sock, buffer)[0] == 200
        sock.sendall(GET_READY)
        assert read_response(sock, buffer)[0] == 200  # answered from the caches

        state.write_text("{ not json")
        sock.sendall(GET_READY)
        status, _, body = read_response(sock, buffer)
        assert status == 503 and any("E203" in reason for reason in json.loads(body)["reasons"])

        state.write_bytes(good)
        sock.sendall(GET_READY)
        assert read_response(sock, buffer)[0] == 200


def test_a_failure_while_handling_a_request_costs_that_connection_only(
    server: HealthServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    complete = RequestReader.on_message_complete

    def buggy(self: RequestReader) -> None:
        if self._url == b"/boom":
            raise RuntimeError("a bug in the server")
        complete(self)

    monkeypatch.setattr(RequestReader, "on_message_complete", buggy)
    with connect(server) as sock:
        sock.sendall(b"GET /boom HTTP/1.1\r\n\r\n")
        assert closed_by_peer(sock)
    with connect(server) as sock:
        sock.sendall(GET_READY)
        assert read_response(sock, bytearray())[0] == 200
    assert any("failed to handle a request" in record.getMessage() for record in caplog.records)
