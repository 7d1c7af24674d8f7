"""The health server against slow and stuck clients and a stuck state, over real sockets:
`cde-otel health serve` as a subprocess (slowloris, FIFO), the monitor in-process (hung storage).

* Trickled bytes do not extend the deadline for a complete request (``--head-timeout``).
* At the connection cap (``--connection-limit``), ``/health`` still answers: a new connection
  takes the place of the one that has waited longest without owing an answer.
* Readiness never waits on the state longer than ``--state-timeout``: a FIFO in place of
  ``state.json`` is refused unread, and a read that hangs answers 503 at the deadline.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from cde_otel.core import state
from cde_otel.health import HealthMonitor
from cde_otel.settings import load_settings

HEAD_TIMEOUT_S = 1.0
CONNECTION_LIMIT = 40
ATTACKERS = 60  # more than the cap: the server is at its limit for the whole attack
ATTACK_S = 3.0
TRICKLE_EVERY_S = 0.2
#: How late past its deadline a connection may be closed on a loaded shared machine (the sweep ticks at 0.1 s).
SLACK_S = 1.5
DEADLINE_S = 10.0


def _cli() -> str:
    return str(Path(sys.executable).with_name("cde-otel"))


@contextmanager
def serve(project: Path, *options: str) -> Iterator[int]:
    """`cde-otel health serve --port 0 --path project OPTIONS`; yields its port once it announced itself."""
    process = subprocess.Popen(
        [_cli(), "health", "serve", "--port", "0", "--path", str(project), *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith(("CDE_OTEL_", "OTEL_"))},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/health", line)
        assert match, line + (process.stderr.read() if process.stderr else "")
        yield int(match[1])
    finally:
        process.kill()
        process.wait()


def get(port: int, path: str, timeout: float) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


class Slowloris:
    """``ATTACKERS`` connections, each sending a request head one byte every ``TRICKLE_EVERY_S``,
    reopened as soon as the server closes one; records how long each lived after its first byte."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.lifetimes: list[float] = []  # of the connections the server closed
        self.opened = 0
        self._selector = selectors.DefaultSelector()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _open(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE_S)
        sock.setblocking(False)
        sock.send(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        self._selector.register(sock, selectors.EVENT_READ, time.monotonic())
        self.opened += 1

    def _closed(self, sock: socket.socket, started: float) -> None:
        self.lifetimes.append(time.monotonic() - started)
        self._selector.unregister(sock)
        sock.close()

    def _run(self) -> None:
        for _ in range(ATTACKERS):
            self._open()
        next_trickle = time.monotonic()
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(4096)
                except OSError:
                    data = b""
                if not data:  # closed by the server: the attack goes on with a fresh connection
                    self._closed(sock, key.data)
                    self._open()
            if time.monotonic() >= next_trickle:
                next_trickle += TRICKLE_EVERY_S
                for key in list(self._selector.get_map().values()):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    try:
                        sock.send(b"X")  # one byte of a header name that never ends
                    except OSError:
                        self._closed(sock, key.data)
                        self._open()

    def __enter__(self) -> Slowloris:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(DEADLINE_S)
        for key in list(self._selector.get_map().values()):
            key.fileobj.close()


@pytest.fixture
def project(make_project: Any) -> Path:
    path: Path = make_project(features=1)
    return path


def test_trickled_bytes_do_not_extend_the_head_deadline_and_liveness_answers_at_the_cap(project: Path) -> None:
    options = ("--head-timeout", str(HEAD_TIMEOUT_S), "--connection-limit", str(CONNECTION_LIMIT))
    with serve(project, *options) as port:
        answers: list[int] = []
        with Slowloris(port) as attack:
            end = time.monotonic() + ATTACK_S
            while time.monotonic() < end:
                status, body = get(port, "/health", timeout=2.0)  # an unanswered probe raises: the test fails
                answers.append(status)
                assert body["status"] == "alive"
                time.sleep(0.1)
        lifetimes = attack.lifetimes

    assert answers and set(answers) == {200}
    assert len(lifetimes) >= ATTACKERS, "the server kept the trickling connections open"
    assert max(lifetimes) <= HEAD_TIMEOUT_S + SLACK_S, f"a trickling connection lived {max(lifetimes):.2f}s"


def test_a_fifo_state_file_makes_readiness_503_without_waiting(project: Path) -> None:
    with serve(project, "--state-timeout", "0.5") as port:
        assert get(port, "/health/ready", timeout=DEADLINE_S)[0] == 200
        target = project / ".cde" / "state.json"
        target.unlink()
        os.mkfifo(target)
        status, body = get(port, "/health/ready", timeout=DEADLINE_S)  # a hang raises TimeoutError
        alive, _ = get(port, "/health", timeout=DEADLINE_S)

    assert status == 503 and alive == 200
    assert any("E214" in reason for reason in body["reasons"]), body


def test_readiness_answers_503_at_the_deadline_when_the_state_read_hangs(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A storage that never answers (a stale network mount): the read is injected to block until released."""
    release, calls = threading.Event(), []
    read = state.read_regular

    def hanging(path: Path) -> bytes:
        calls.append(path)
        release.wait(DEADLINE_S * 3)
        return read(path)

    monkeypatch.setattr(state, "read_regular", hanging)
    monitor = HealthMonitor(project, settings=load_settings({}), state_read_timeout_s=0.3)
    verdicts: list[tuple[bool, list[str]]] = []

    def check() -> None:
        verdicts.append(monitor.readiness())
        verdicts.append(monitor.readiness())  # a second check waits again; it does not start a second read

    worker = threading.Thread(target=check, daemon=True)
    worker.start()
    worker.join(DEADLINE_S)
    answered_on_the_loop = monitor.readiness_now()  # the read is still stuck: the event loop must not touch it
    release.set()

    assert not worker.is_alive(), "readiness blocked on the hung read"
    assert [ready for ready, _ in verdicts] == [False, False]
    assert all(any("took over 0.3s" in r for r in reasons) for _, reasons in verdicts), verdicts
    assert len(calls) == 1
    assert answered_on_the_loop is None
