"""The HTTP endpoints over a real loopback socket."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cde_otel import __version__
from cde_otel.health import HealthMonitor, HealthServer, start_health_server
from cde_otel.testing import FakeHost, ManualClock, capture_telemetry

ProjectFactory = Callable[..., Path]
MonitorFactory = Callable[..., HealthMonitor]


@pytest.fixture
def server(make_project: ProjectFactory, make_monitor: MonitorFactory) -> Iterator[HealthServer]:
    recorded = capture_telemetry()
    recorded.record_operation("Project.activate", 0.004)
    running = start_health_server(port=0, monitor=make_monitor(make_project(), recorded))
    yield running
    running.stop()


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_server_binds_loopback_by_default(server: HealthServer) -> None:
    assert server.host == "127.0.0.1"
    assert server.url == f"http://127.0.0.1:{server.port}" and server.port > 0


def test_liveness_and_readiness_are_200_when_healthy(server: HealthServer) -> None:
    assert get(server.url + "/health") == (200, {"status": "alive", "version": __version__})
    assert get(server.url + "/health/ready") == (200, {"status": "ready"})


def test_metrics_endpoint_returns_the_metrics_block(server: HealthServer) -> None:
    status, body = get(server.url + "/health/metrics")

    assert status == 200
    assert body["memory_mb"] == 50
    assert body["operations"]["Project.activate"]["count"] == 1
    assert get(server.url + "/health/status")[1]["status"] == "healthy"


def test_readiness_is_503_with_reasons_when_read_only(server: HealthServer, host: FakeHost) -> None:
    host.read_only = "storage refused the write"

    status, body = get(server.url + "/health/ready")

    assert status == 503
    assert body == {"status": "not_ready", "reasons": ["read-only: storage refused the write"]}
    assert get(server.url + "/health")[0] == 200  # still alive


def test_readiness_is_503_when_disk_is_critical(server: HealthServer, host: FakeHost, clock: ManualClock) -> None:
    host.free_mb = 1
    clock.advance(2)

    status, body = get(server.url + "/health/ready")

    assert status == 503 and "disk space critical" in body["reasons"][0]


def test_unknown_path_is_404(server: HealthServer) -> None:
    assert get(server.url + "/nope")[0] == 404


class _ExplodingMonitor(HealthMonitor):
    def readiness(self) -> tuple[bool, list[str]]:
        raise RuntimeError("secret-token-123 leaked into an exception")


def test_handler_errors_are_500_with_a_coded_error_and_no_traceback(make_project: ProjectFactory) -> None:
    with start_health_server(monitor=_ExplodingMonitor(make_project())) as server:
        status, body = get(server.url + "/health/ready")
        alive = get(server.url + "/health")[0]

    assert status == 500
    assert body["error"]["code"] == "E902"
    text = json.dumps(body)
    assert "Traceback" not in text and "secret-token-123" not in text
    assert alive == 200  # the server survived


def test_keep_alive_connection_serves_several_requests(server: HealthServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        for _ in range(3):
            connection.request("GET", "/health/ready")
            response = connection.getresponse()
            assert response.status == 200 and json.loads(response.read()) == {"status": "ready"}
    finally:
        connection.close()


def test_stop_closes_the_socket(make_project: ProjectFactory) -> None:
    server = start_health_server(monitor=HealthMonitor(make_project()))
    url = server.url
    server.stop()

    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/health", timeout=2)
