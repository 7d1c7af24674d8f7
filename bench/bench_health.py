"""Benchmarks of ``/health/ready``: latency at a fixed rate, a burst of concurrent connections, stalled clients.

    .venv/bin/python bench/bench_health.py [--rate 200] [--seconds 5] [--bursts 5] [--no-pin] [--quick]

**Rate** (goal: p99 < 5 ms at 200 req/s):
Open-loop schedule: request ``i`` is due at ``start + i / rate`` whether or not the
previous one was slow, and its latency (``p50_ms``/``p99_ms``/``max_ms``) is measured from
that due time, so a stall shows up as queueing delay instead of silently lowering the rate
(no coordinated omission). It includes the client's own wake-up lateness (``time.sleep``
overshoot on a busy host); ``round_trip_*`` is send-to-response only, for comparison.
One keep-alive ``http.client`` connection, like a load balancer's health checker; the
server runs in this process on 127.0.0.1 with the real probes (disk walk, psutil,
probe write) against a temporary project.

**Burst** (goals: 0 failures, p99 < 50 ms): ``bursts`` times 200 connections opened at
once by ApacheBench (``_burst.ab_burst``: C, its own process), one GET each; latency from each
connection's ``connect()`` to its full response, so listen-queue waits and dropped SYNs count.
p50/p99/max are over all ``bursts`` x 200 requests. Side by side, burst for burst in alternating
order, the same client measures the floor (``_burst.BareServer``: the least a CPython server can
do per connection), so ``p99_ratio_vs_bare`` shows what the health server adds to it; the CPU
time of the server process and of ``ab`` per request are reported for both. The two servers'
threads run on one CPU and ``ab`` on another (``--no-pin``: wherever the scheduler puts them),
so client and server never queue behind each other. The load average before and after is
in the result: on a shared machine, read the figures with it.

**Stalled** (goal: released within the read timeout): 300 connections send half a
request and stop. While they hang, a burst of 50 well-behaved requests (``ab``) must all succeed;
the bench reports the threads the process gained (a bounded pool, not one per connection) and
when the server closed the last stalled connection, against a ``read_timeout_s`` of 2 s.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import selectors
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from _burst import BareServer, Burst, ab_burst, cpus

from cde_otel.core import FileSystemProjectRepository
from cde_otel.health import HealthMonitor, start_health_server

STALLED_READ_TIMEOUT_S = 2.0


def _percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(int(q * len(sorted_values)), len(sorted_values) - 1)]


@contextmanager
def _project() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="cde-health-bench-") as project_dir:
        project = FileSystemProjectRepository().get_or_create(project_dir)
        project.activate()
        for index in range(5):
            project.start_feature(f"benchmark feature {index}")
        FileSystemProjectRepository().save(project)
        yield project_dir


def measure_health_latency(rate: float = 200, seconds: float = 5) -> dict[str, Any]:
    """Sends ``rate`` req/s to ``/health/ready`` for ``seconds``; returns latency figures in ms."""
    with _project() as project_dir:
        server = start_health_server(port=0, monitor=HealthMonitor(project_dir))
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        latencies: list[float] = []
        round_trips: list[float] = []
        statuses: dict[int, int] = {}
        try:
            connection.request("GET", "/health/ready")  # warm-up: connects and fills the probe caches
            connection.getresponse().read()
            total = int(rate * seconds)
            start = time.perf_counter()
            for index in range(total):
                due = start + index / rate
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                sent = time.perf_counter()
                connection.request("GET", "/health/ready")
                response = connection.getresponse()
                response.read()
                done = time.perf_counter()
                latencies.append((done - due) * 1000)
                round_trips.append((done - sent) * 1000)
                statuses[response.status] = statuses.get(response.status, 0) + 1
            elapsed = time.perf_counter() - start
        finally:
            connection.close()
            server.stop()
    ordered = sorted(latencies)
    trips = sorted(round_trips)
    return {
        "endpoint": "/health/ready",
        "target_rate": rate,
        "achieved_rate": round(len(latencies) / elapsed, 1),
        "requests": len(latencies),
        "statuses": statuses,
        "p50_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(_percentile(ordered, 0.99), 3),
        "max_ms": round(ordered[-1], 3),
        "round_trip_p50_ms": round(statistics.median(trips), 3),
        "round_trip_p99_ms": round(_percentile(trips, 0.99), 3),
        "round_trip_max_ms": round(trips[-1], 3),
        "goal_p99_ms": 5.0,
    }


def _summary(bursts: list[Burst]) -> dict[str, Any]:
    ordered = sorted(ms for burst in bursts for ms in burst.latencies_ms)
    requests = sum(burst.requests for burst in bursts)
    return {
        "requests": requests,
        "failures": sum(burst.failures for burst in bursts),
        "errors": sorted({error for burst in bursts for error in burst.errors}),
        "p50_ms": round(statistics.median(ordered), 3) if ordered else None,
        "p99_ms": round(_percentile(ordered, 0.99), 3) if ordered else None,
        "max_ms": round(ordered[-1], 3) if ordered else None,
        "per_burst_p99_ms": [round(_percentile(sorted(b.latencies_ms), 0.99), 1) for b in bursts if b.latencies_ms],
        "client_cpu_us_per_request": round(sum(b.client_cpu_s for b in bursts) / requests * 1e6, 1),
    }


def _servers_cpu_s() -> float:
    """CPU time of this process's threads other than the calling one (which only starts ab and waits)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime - time.thread_time()


def _load() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def _cpu_plan(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """(CPUs for the servers, CPUs for the client): two different ones, or (None, None) to leave it to the OS."""
    allowed = sorted(os.sched_getaffinity(0)) if pin and hasattr(os, "sched_getaffinity") else []
    return ({allowed[0]}, {allowed[1]}) if len(allowed) >= 2 else (None, None)


def measure_health_burst(connections: int = 200, bursts: int = 5, pin: bool = True) -> dict[str, Any]:
    """``bursts`` bursts of ``connections`` simultaneous connections, one GET /health/ready each, next to the floor."""
    server_cpus, client_cpus = _cpu_plan(pin)
    load_before = _load()
    with _project() as project_dir:
        with cpus(server_cpus):  # the servers' threads keep this CPU; the main thread gets its own back
            server = start_health_server(port=0, monitor=HealthMonitor(project_dir))
            bare = BareServer()
        runs: dict[str, list[Burst]] = {"health": [], "bare": []}
        server_cpu: dict[str, float] = {"health": 0.0, "bare": 0.0}
        try:
            with cpus(client_cpus):  # ab inherits it
                for port in (server.port, bare.port):
                    ab_burst(port, 10)  # warm-up: connects once, fills the probe caches
                for index in range(bursts):
                    order = ("health", "bare") if index % 2 == 0 else ("bare", "health")
                    for name in order:
                        time.sleep(0.2)  # let the previous burst's connections and probe refreshes settle
                        cpu_before = _servers_cpu_s()
                        runs[name].append(ab_burst(server.port if name == "health" else bare.port, connections))
                        server_cpu[name] += _servers_cpu_s() - cpu_before
        finally:
            server.stop()
            bare.stop()
    health, floor = _summary(runs["health"]), _summary(runs["bare"])
    for name, summary in (("health", health), ("bare", floor)):
        summary["server_cpu_us_per_request"] = round(server_cpu[name] / summary["requests"] * 1e6, 1)
    ratio = round(health["p99_ms"] / floor["p99_ms"], 2) if health["p99_ms"] and floor["p99_ms"] else None
    return {
        "client": "ab",
        "connections": connections,
        "bursts": bursts,
        **health,
        "bare": floor,
        "p99_ratio_vs_bare": ratio,
        "cpus": {"servers": sorted(server_cpus), "client": sorted(client_cpus)}
        if server_cpus and client_cpus
        else None,
        "load_average": {"before": load_before, "after": _load()},
        "goal_p99_ms": 50.0,
        "goal_failures": 0,
    }


def _release_times(hanging: dict[socket.socket, float], limit_s: float) -> list[float]:
    """Seconds from each socket's last byte sent to the server closing (or resetting) it; waits in select()."""
    selector = selectors.DefaultSelector()
    for sock in hanging:
        selector.register(sock, selectors.EVENT_READ)
    released: list[float] = []
    end = time.perf_counter() + limit_s
    while len(released) < len(hanging) and time.perf_counter() < end:
        for key, _ in selector.select(timeout=0.1):
            ready = key.fileobj
            assert isinstance(ready, socket.socket)
            try:
                closed = ready.recv(1024) == b""
            except BlockingIOError:
                continue
            except OSError:
                closed = True  # reset by the server: released too
            if closed:
                released.append(time.perf_counter() - hanging[ready])
                selector.unregister(ready)
    selector.close()
    return released


def measure_stalled_connections(stalled: int = 300, read_timeout_s: float = STALLED_READ_TIMEOUT_S) -> dict[str, Any]:
    """``stalled`` half-sent requests: are well-behaved clients still served, and when are they released?"""
    with _project() as project_dir:
        threads_before = threading.active_count()
        server = start_health_server(port=0, monitor=HealthMonitor(project_dir), read_timeout_s=read_timeout_s)
        hanging: dict[socket.socket, float] = {}  # socket -> when its last byte was sent
        try:
            ab_burst(server.port, 10)  # warm-up
            for _ in range(stalled):
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
                sock.sendall(b"GET /health/ready HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and nothing more
                hanging[sock] = time.perf_counter()
                sock.setblocking(False)
            during = _summary([ab_burst(server.port, 50)])
            threads_gained = threading.active_count() - threads_before
            released_at = _release_times(hanging, read_timeout_s * 5 + 10)
        finally:
            for sock in hanging:
                sock.close()
            server.stop()
    return {
        "stalled": stalled,
        "read_timeout_s": read_timeout_s,
        "released": len(released_at),
        "released_max_s": round(max(released_at), 3) if released_at else None,
        "never_released": stalled - len(released_at),
        "threads_gained": threads_gained,
        "workers": server.workers,
        "requests_during_stall": during,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--no-pin", action="store_true", help="leave the servers and ab to the scheduler")
    parser.add_argument("--quick", action="store_true", help="one burst instead of --bursts")
    args = parser.parse_args(argv)
    result = {
        "rate": measure_health_latency(args.rate, args.seconds),
        "burst": measure_health_burst(bursts=1 if args.quick else args.bursts, pin=not args.no_pin),
        "stalled": measure_stalled_connections(),
    }
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    burst, stalled = result["burst"], result["stalled"]
    passed = (
        result["rate"]["p99_ms"] < result["rate"]["goal_p99_ms"]
        and burst["failures"] == 0
        and burst["p99_ms"] < burst["goal_p99_ms"]
        and stalled["never_released"] == 0
        and stalled["released_max_s"] <= stalled["read_timeout_s"] + 1
    )
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
