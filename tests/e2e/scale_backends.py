"""The agent → gateway collector tier on loopback, for the scale-out e2e test and benchmark.

``ScaleOutBackends`` is ``Backends`` (Jaeger with Badger storage, Prometheus) with the single
collector replaced by the tier of docs/scaling.md::

    apps --OTLP--> agent (otel-agent.yaml, load_balancing on trace id)
                     |--> gateway-1 (otel-collector.yaml + otel-gateway.yaml: tail_sampling) --> Jaeger, Prometheus
                     |--> gateway-2 (same)                                                  --> Jaeger, Prometheus

    with ScaleOutBackends(gateways=2) as b:
        ...apps send OTLP to b.otlp_http_endpoint (the agent)...
        b.kill_gateway(1); b.start_gateway(1)     # crash and restart the second gateway
        b.restart_jaeger()                        # same Badger directory
        b.collector_metrics(b.gateway_metrics_url(0))

Every process binds free 127.0.0.1 ports; the same config files serve docker-compose. The
agent is "the collector" of ``Backends`` (``otlp_*_endpoint``, ``collector_metrics_url``,
``start_collector``/``stop_collector``). Pure standard library.
"""

from __future__ import annotations

import contextlib
import os
import signal
import urllib.request
from pathlib import Path

from backends import CONFIG_DIR, Backends, Binaries, _http, _Proc, _tcp_open, free_ports

__all__ = ["GATEWAY_ID_KEY", "ScaleOutBackends", "parse_prometheus_text"]

#: The resource attribute each gateway stamps on what it forwards (otel-gateway.yaml).
GATEWAY_ID_KEY = "cde.gateway.id"

Sample = tuple[str, frozenset[tuple[str, str]]]


def parse_prometheus_text(text: str) -> dict[Sample, float]:
    """Prometheus text exposition -> {(metric name, labels): value} (no escapes in our label values)."""
    samples: dict[Sample, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        name, _, label_text = series.partition("{")
        labels = []
        for part in label_text.rstrip("}").split('",'):
            key, sep, raw = part.partition('="')
            if sep:
                labels.append((key.strip(", "), raw.rstrip('"')))
        samples[(name, frozenset(labels))] = float(value)
    return samples


class ScaleOutBackends(Backends):
    """Jaeger + Prometheus + ``gateways`` gateway collectors + one agent collector, on loopback.

    ``agent_env`` / ``gateway_env`` add environment for the agent / every gateway (the knobs of
    collector-config/README.md, e.g. ``{"GATEWAY_SAMPLING_PERCENTAGE": "10"}``).
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str] | None = None,
        *,
        gateways: int = 2,
        agent_env: dict[str, str] | None = None,
        gateway_env: dict[str, str] | None = None,
        startup_timeout: float = 60.0,
        binaries: Binaries | None = None,
    ) -> None:
        lo = "127.0.0.1"
        ports = free_ports(4 * gateways)
        grpc_ports = ports[0::4]
        super().__init__(
            workdir,
            startup_timeout=startup_timeout,
            binaries=binaries,
            collector_configs=("otel-agent.yaml",),
            jaeger_storage="badger",
            collector_env={
                "AGENT_GATEWAY_ENDPOINTS": "[" + ", ".join(f"{lo}:{p}" for p in grpc_ports) + "]",
                **(agent_env or {}),
            },
        )
        self.gateway_ids = [f"gateway-{index + 1}" for index in range(gateways)]
        #: "127.0.0.1:port" of each gateway's OTLP gRPC receiver, as the agent's resolver lists them
        self.gateway_endpoints = [f"{lo}:{port}" for port in grpc_ports]
        self._gateway_health = [f"http://{lo}:{port}/" for port in ports[2::4]]
        self._gateway_metrics = [f"http://{lo}:{port}/metrics" for port in ports[3::4]]
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        self._gateways = []
        for index, gateway_id in enumerate(self.gateway_ids):
            http_port, health_port, telemetry_port = ports[4 * index + 1 : 4 * index + 4]
            self._gateways.append(
                _Proc(
                    name=gateway_id,
                    argv=[
                        str(self.binaries.otelcol),
                        f"--config={CONFIG_DIR / 'otel-collector.yaml'}",
                        f"--config={CONFIG_DIR / 'otel-gateway.yaml'}",
                    ],
                    env={
                        **base_env,
                        "GATEWAY_ID": gateway_id,
                        "OTLP_GRPC_ENDPOINT": self.gateway_endpoints[index],
                        "OTLP_HTTP_ENDPOINT": f"{lo}:{http_port}",
                        "JAEGER_OTLP_ENDPOINT": self.jaeger_otlp_grpc_endpoint,
                        "PROMETHEUS_REMOTE_WRITE_URL": f"{self.prometheus_url}/api/v1/write",
                        "COLLECTOR_LOGS_FILE": str(self.workdir / gateway_id / "logs.jsonl"),
                        "COLLECTOR_HEALTH_ENDPOINT": f"{lo}:{health_port}",
                        "COLLECTOR_TELEMETRY_HOST": lo,
                        "COLLECTOR_TELEMETRY_PORT": str(telemetry_port),
                        **(gateway_env or {}),
                    },
                    log_path=self.log_dir / f"{gateway_id}.log",
                    cwd=self.workdir,
                )
            )

    # ---- lifecycle ---------------------------------------------------------------------

    def start_collector(self) -> None:
        """Start every gateway that is not running, then the agent; wait until each is ready."""
        for index, gateway in enumerate(self._gateways):
            if not gateway.running():
                self.start_gateway(index)
        super().start_collector()

    def start_gateway(self, index: int) -> None:
        """(Re)start gateway ``index`` on its ports and wait until it is ready."""
        gateway = self._gateways[index]
        gateway.start()
        self._wait_ready(gateway, lambda: self._gateway_ready(index))

    def kill_gateway(self, index: int, timeout: float = 10.0) -> None:
        """SIGKILL gateway ``index`` (a crash: what it held in memory is lost) and wait for its port to close."""
        gateway = self._gateways[index]
        if gateway.popen is not None and gateway.popen.poll() is None:
            gateway.popen.send_signal(signal.SIGKILL)
        gateway.stop_until_closed(self.gateway_endpoints[index], timeout, interval=0.05)

    def gateway_running(self, index: int) -> bool:
        return self._gateways[index].running()

    def process_ids(self) -> dict[str, list[int]]:
        """PIDs of the running processes by tier: 'agent', 'gateways', 'jaeger', 'prometheus'."""
        tiers = {
            "agent": [self._collector],
            "gateways": self._gateways,
            "jaeger": [self._jaeger],
            "prometheus": [self._prometheus],
        }
        return {
            tier: [proc.popen.pid for proc in procs if proc.popen is not None and proc.running()]
            for tier, procs in tiers.items()
        }

    def restart_jaeger(self, timeout: float = 30.0) -> None:
        """Stop Jaeger (SIGTERM) and start it again on the same ports and Badger directory."""
        self._jaeger.stop_until_closed(self.jaeger_otlp_grpc_endpoint, timeout, interval=0.05)
        self._jaeger.start()
        self._wait_ready(self._jaeger, self._jaeger_ready)

    def stop(self, timeout: float = 10.0) -> None:
        """The agent first (it flushes to the gateways), then the gateways, then the rest."""
        with contextlib.suppress(Exception):
            self._collector.stop(timeout)
        for gateway in self._gateways:
            with contextlib.suppress(Exception):
                gateway.stop(timeout)
        super().stop(timeout)

    def log_tail(self, name: str, lines: int = 60) -> str:
        """Last lines of a process's output: 'jaeger', 'prometheus', 'collector' (the agent) or a gateway id."""
        if name in self.gateway_ids:
            return self._gateways[self.gateway_ids.index(name)].log_tail(lines)
        return super().log_tail(name, lines)

    def _gateway_ready(self, index: int) -> bool:
        status, _ = _http(self._gateway_health[index], timeout=2)
        return status == 200 and _tcp_open(self.gateway_endpoints[index])

    # ---- the collectors' own metrics -----------------------------------------------------

    def gateway_metrics_url(self, index: int) -> str:
        return self._gateway_metrics[index]

    def gateway_logs_file(self, index: int) -> Path:
        return self.workdir / self.gateway_ids[index] / "logs.jsonl"

    @staticmethod
    def collector_metrics(url: str) -> dict[Sample, float]:
        """Every sample of a collector's Prometheus endpoint (agent: ``collector_metrics_url``)."""
        with urllib.request.urlopen(url, timeout=5) as response:
            return parse_prometheus_text(response.read().decode())

    @classmethod
    def metric_sum(cls, url: str, name: str, **labels: str) -> float:
        """Sum of counter ``name`` (with or without ``_total``) over the label sets matching ``labels`` (0 if none)."""
        names = {name.removesuffix("_total"), name.removesuffix("_total") + "_total"}
        wanted = set(labels.items())
        return sum(v for (n, ls), v in cls.collector_metrics(url).items() if n in names and wanted <= ls)
