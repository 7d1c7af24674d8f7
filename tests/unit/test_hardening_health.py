"""The health server: a real listen backlog, stalled connections released
within the read timeout by a bounded set of threads, readiness that reflects an unreadable
state without any GET writing, and HEAD.

Behaviour only; the latency goals (200 concurrent connections, p99) live in ``bench/bench_health.py``.
"""

from __future__ import annotations

import http.client
import json
import selectors
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cde_otel.health import HealthMonitor, HealthServer, start_health_server
from cde_otel.settings import load_settings

ProjectFactory = Callable[..., Path]  # tests/conftest.py
DEADLINE_S = 15.0
CALM = load_settings({}, alert_disk_free_mb=0.001, alert_memory_percent=99.99)


@pytest.fixture
def project_dir(make_project: ProjectFactory) -> Path:
    return make_project(features=2)


@pytest.fixture
def server(project_dir: Path) -> Iterator[HealthServer]:
    with start_health_server(port=0, monitor=HealthMonitor(project_dir, settings=CALM)) as running:
        yield running


def request(server: HealthServer, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=DEADLINE_S)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def burst(port: int, connections: int, raw_request: bytes, deadline_s: float) -> list[tuple[int, float]]:
    """Opens ``connections`` sockets at once, sends ``raw_request`` on each; (status, seconds) per connection.

    Status 0 is a failure (refused, reset, or no answer before the deadline).
    """
    selector = selectors.DefaultSelector()
    pending: dict[socket.socket, dict[str, Any]] = {}
    for _ in range(connections):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        pending[sock] = {"started": time.monotonic(), "sent": False, "data": b""}
        selector.register(sock, selectors.EVENT_WRITE)
    results: list[tuple[int, float]] = []

    def finish(sock: socket.socket, status: int) -> None:
        results.append((status, time.monotonic() - pending.pop(sock)["started"]))
        selector.unregister(sock)
        sock.close()

    end = time.monotonic() + deadline_s
    while pending and time.monotonic() < end:
        for key, _ in selector.select(timeout=0.1):
            ready = key.fileobj
            assert isinstance(ready, socket.socket)
            state = pending[ready]
            try:
                if not state["sent"]:
                    if ready.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        finish(ready, 0)
                        continue
                    ready.sendall(raw_request)
                    state["sent"] = True
                    selector.modify(ready, selectors.EVENT_READ)
                    continue
                chunk = ready.recv(65536)
            except OSError:
                finish(ready, 0)
                continue
            if chunk:
                state["data"] += chunk
            else:
                data: bytes = state["data"]
                finish(ready, int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0)
    for sock in list(pending):
        finish(sock, 0)
    return results


# -- backlog, read timeout, bounded workers ---------------------------------------------------------------


def listen_backlog(port: int) -> int:
    """The listen backlog the kernel reports for 127.0.0.1:``port`` (``ss``: Send-Q of a LISTEN socket)."""
    ss = shutil.which("ss")
    assert ss, "iproute2's ss is needed to read the listen backlog"
    out = subprocess.run([ss, "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    (line,) = [line for line in out.splitlines() if line.strip()]
    return int(line.split()[2])


def test_the_server_listens_with_a_real_backlog(server: HealthServer) -> None:
    assert listen_backlog(server.port) >= 128


def test_200_concurrent_connections_all_get_an_answer(server: HealthServer) -> None:
    results = burst(server.port, 200, b"GET /health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", DEADLINE_S)

    statuses = [status for status, _ in results]
    assert statuses.count(200) == 200, {s: statuses.count(s) for s in set(statuses)}


def open_stalled(port: int, count: int) -> list[socket.socket]:
    stalled = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S)
        sock.sendall(b"GET /health/ready HTTP/1.1\r\nHost: x\r\n")  # never finished
        stalled.append(sock)
    return stalled


def closed_by_server(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1024) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True  # reset: released too


def test_stalled_connections_are_released_by_the_read_timeout(project_dir: Path) -> None:
    threads_before = threading.active_count()
    with start_health_server(port=0, monitor=HealthMonitor(project_dir, settings=CALM), read_timeout_s=1.0) as srv:
        stalled = open_stalled(srv.port, 300)
        opened = time.monotonic()
        try:
            # a well-behaved client is still served meanwhile, and the stalled ones hold no threads
            status, _, body = request(srv, "GET", "/health/ready")
            assert (status, json.loads(body)) == (200, {"status": "ready"})
            assert threading.active_count() - threads_before <= srv.workers + 4
            open_ones = list(stalled)
            while open_ones and time.monotonic() - opened < DEADLINE_S:
                open_ones = [sock for sock in open_ones if not closed_by_server(sock)]
                time.sleep(0.05)
            # Released at all (without a read timeout they would stay open past the deadline); how soon
            # is a wall-clock goal, measured by bench/bench_health.py (health_stalled_released_max_s).
            assert not open_ones, f"{len(open_ones)} stalled connections still open after {DEADLINE_S}s"
        finally:
            for sock in stalled:
                sock.close()


def test_busy_workers_queue_connections_instead_of_dropping_them(project_dir: Path) -> None:
    gate = threading.Event()
    lock = threading.Lock()
    inside = [0, 0]  # now, most at once

    class SlowMonitor(HealthMonitor):
        def readiness(self) -> tuple[bool, list[str]]:
            with lock:
                inside[0] += 1
                inside[1] = max(inside)
            gate.wait(DEADLINE_S)
            with lock:
                inside[0] -= 1
            return super().readiness()

    with start_health_server(port=0, monitor=SlowMonitor(project_dir, settings=CALM), workers=4) as srv:
        results: list[tuple[int, float]] = []
        request_line = b"GET /health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        client = threading.Thread(target=lambda: results.extend(burst(srv.port, 50, request_line, DEADLINE_S)))
        client.start()
        deadline = time.monotonic() + DEADLINE_S
        while inside[1] < srv.workers and time.monotonic() < deadline:
            time.sleep(0.01)
        gate.set()
        client.join(DEADLINE_S + 5)

    assert [status for status, _ in results].count(200) == 50
    assert inside[1] == srv.workers, "requests are answered by a bounded pool, not a thread per connection"


# -- readiness reflects an unreadable state; a GET never writes -----------------------------------------


def snapshot(directory: Path) -> dict[str, bytes | None]:
    return {
        str(path.relative_to(directory)): path.read_bytes() if path.is_file() else None
        for path in sorted(directory.rglob("*"))
        if not path.name.endswith(".lock")
    }


def test_readiness_is_503_when_the_state_is_corrupt_without_backups(project_dir: Path) -> None:
    shutil.rmtree(project_dir / ".cde" / "backups")
    (project_dir / ".cde" / "state.json").write_text("{ not json")
    with start_health_server(port=0, monitor=HealthMonitor(project_dir, settings=CALM)) as srv:
        status, _, body = request(srv, "GET", "/health/ready")

    assert status == 503
    reasons = json.loads(body)["reasons"]
    assert any("E203" in reason for reason in reasons), reasons


def test_readiness_is_503_when_the_state_file_is_a_directory(project_dir: Path) -> None:
    state = project_dir / ".cde" / "state.json"
    state.unlink()
    state.mkdir()
    with start_health_server(port=0, monitor=HealthMonitor(project_dir, settings=CALM)) as srv:
        status, _, body = request(srv, "GET", "/health/ready")

    assert status == 503, body
    assert json.loads(body)["status"] == "not_ready"


def test_no_health_get_writes_to_the_project(project_dir: Path) -> None:
    (project_dir / ".cde" / "state.json").write_text("{ not json")
    before = snapshot(project_dir)
    with start_health_server(port=0, monitor=HealthMonitor(project_dir, settings=CALM)) as srv:
        for path in ("/health", "/health/ready", "/health/metrics", "/health/status"):
            request(srv, "GET", path)
        _, _, body = request(srv, "GET", "/health/status")

    assert snapshot(project_dir) == before, "a GET recovered (rewrote) the state"
    assert json.loads(body)["status"] != "healthy"


# -- HEAD -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/health", "/health/ready", "/health/metrics", "/health/status"])
def test_head_answers_like_get_without_a_body(server: HealthServer, path: str) -> None:
    get_status, get_headers, _ = request(server, "GET", path)
    head_status, head_headers, head_body = request(server, "HEAD", path)

    assert head_status == get_status == 200
    assert head_body == b""
    assert head_headers["content-type"] == get_headers["content-type"] == "application/json"
    assert int(head_headers["content-length"]) > 0


def test_head_keeps_a_keep_alive_connection_usable(server: HealthServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=DEADLINE_S)
    try:
        connection.request("HEAD", "/health/ready")
        head = connection.getresponse()
        assert head.status == 200 and head.read() == b""
        connection.request("GET", "/health/ready")
        get = connection.getresponse()
        assert get.status == 200 and json.loads(get.read()) == {"status": "ready"}
    finally:
        connection.close()


def test_other_methods_are_405(server: HealthServer) -> None:
    status, headers, _ = request(server, "POST", "/health/ready")

    assert status == 405
    assert set(headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}


def test_start_and_stop_leave_no_threads_and_never_raise(project_dir: Path) -> None:
    monitor = HealthMonitor(project_dir, settings=CALM)
    threads_before = threading.active_count()
    for index in range(30):
        with start_health_server(port=0, monitor=monitor, read_timeout_s=0.5) as srv:
            if index % 3 == 0:
                assert request(srv, "GET", "/health")[0] == 200
    assert threading.active_count() <= threads_before + 1  # at most a probe-cache refresh still finishing
