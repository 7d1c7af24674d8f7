"""Load generator: bursts of N simultaneous connections to 127.0.0.1, one GET each; prints JSON.

    python bench/_http_burst.py --port 8765 --connections 200 --bursts 5 [--path /health/ready]

Run as its own process (``bench_health`` does) so the client does not share the server's GIL.
Every connection is opened non-blocking at once and driven by one ``selectors`` loop, which
keeps the client's own cost per request small. A request's latency runs from its own
``connect()`` to the end of its response, so time spent in the listen queue (or a dropped
SYN and its retransmit) is counted. A connection refused, reset, answered with anything but
a status line, or unanswered within ``--timeout`` seconds is a failure.
"""

from __future__ import annotations

import argparse
import errno
import json
import selectors
import socket
import sys
import time
from typing import Any


def burst(port: int, connections: int, path: str, timeout_s: float) -> list[dict[str, Any]]:
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
    selector = selectors.DefaultSelector()
    pending: dict[socket.socket, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []

    def finish(sock: socket.socket, status: int, error: str | None) -> None:
        state = pending.pop(sock)
        results.append({"ms": (time.perf_counter() - state["started"]) * 1000, "status": status, "error": error})
        selector.unregister(sock)
        sock.close()

    for _ in range(connections):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        pending[sock] = {"started": time.perf_counter(), "sent": False, "data": b""}
        sock.connect_ex(("127.0.0.1", port))
        selector.register(sock, selectors.EVENT_WRITE)
    end = time.perf_counter() + timeout_s
    while pending and time.perf_counter() < end:
        for key, _ in selector.select(timeout=0.05):
            ready = key.fileobj
            assert isinstance(ready, socket.socket)
            state = pending[ready]
            if not state["sent"]:
                error = ready.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if error:
                    finish(ready, 0, errno.errorcode.get(error, str(error)))
                    continue
                try:
                    ready.sendall(request)
                except OSError as exc:
                    finish(ready, 0, type(exc).__name__)
                    continue
                state["sent"] = True
                selector.modify(ready, selectors.EVENT_READ)
                continue
            try:
                chunk = ready.recv(65536)
            except OSError as exc:
                finish(ready, 0, type(exc).__name__)
                continue
            if chunk:
                state["data"] += chunk
                continue
            data: bytes = state["data"]
            if data.startswith(b"HTTP/1.1 "):
                finish(ready, int(data.split(b" ", 2)[1]), None)
            else:
                finish(ready, 0, "no response")
    for sock in list(pending):
        finish(sock, 0, "timeout")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--path", default="/health/ready")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--pause", type=float, default=0.2, help="seconds between bursts")
    args = parser.parse_args(argv)
    results: list[dict[str, Any]] = []
    for index in range(args.bursts):
        if index:
            time.sleep(args.pause)
        results.extend(burst(args.port, args.connections, args.path, args.timeout))
    sys.stdout.write(json.dumps(results) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
