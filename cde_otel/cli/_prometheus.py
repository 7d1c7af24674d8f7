"""The latency table from Prometheus: ``histogram_quantile`` over what the collector remote-wrote.

Native histograms (the default exponential aggregation) first; when a metric has none, its classic
``_bucket``/``_count`` series. Names follow the collector's ``UnderscoreEscapingWithSuffixes``
translation (``mcp.server.operation.duration`` -> ``mcp_server_operation_duration_seconds``,
``gen_ai.tool.name`` -> ``gen_ai_tool_name``). Without a window the current counters are read (each
series since its process started); with one, ``increase(...[window])``, which Prometheus extrapolates
to the window's edges.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cde_otel.cli._http import get_json
from cde_otel.health._percentiles import QUANTILES, OperationStats

#: (row kind, metric, group-by label, extra selector, selector of the failed ones)
_ROWS: tuple[tuple[str, str, str, str, str], ...] = (
    ("tool", "mcp_server_operation_duration_seconds", "gen_ai_tool_name", 'gen_ai_tool_name!=""', 'error_type!=""'),
    ("method", "mcp_server_operation_duration_seconds", "mcp_method_name", 'gen_ai_tool_name=""', 'error_type!=""'),
    ("operation", "cde_operation_duration_seconds", "cde_operation", 'cde_operation!=""', 'cde_outcome="error"'),
)


def _vector(url: str, expr: str, at: float | None) -> dict[str, float]:
    answer = get_json("Prometheus", url, "/api/v1/query", {"query": expr, "time": at})
    result: dict[str, float] = {}
    for sample in (answer.get("data") or {}).get("result") or ():
        value = float(sample["value"][1])
        if not math.isnan(value):
            result[next(iter(sample["metric"].values()), "")] = value
    return result


@dataclass(frozen=True, slots=True)
class _Query:
    url: str
    metric: str
    label: str
    base: str  # the selector of every sample of a row
    failed: str  # what selects the failed ones on top of base
    window_s: float | None
    at: float | None

    def selected(self, metric: str, selector: str) -> str:
        series = f"{metric}{{{selector}}}"
        return f"increase({series}[{math.ceil(self.window_s)}s])" if self.window_s else series

    def vector(self, expr: str) -> dict[str, float]:
        return _vector(self.url, expr, self.at)

    def native(self) -> dict[str, OperationStats]:
        def over(selector: str, fn: str) -> dict[str, float]:
            return self.vector(f"{fn}(sum by ({self.label}) ({self.selected(self.metric, selector)}))")

        counts = over(self.base, "histogram_count")
        if not counts:
            return {}
        sums, errors = over(self.base, "histogram_sum"), over(f"{self.base},{self.failed}", "histogram_count")
        summed = f"sum by ({self.label}) ({self.selected(self.metric, self.base)})"
        quantiles = {name: self.vector(f"histogram_quantile({q}, {summed})") for name, q in QUANTILES}
        return _stats(counts, sums, errors, quantiles)

    def classic(self) -> dict[str, OperationStats]:
        def summed(suffix: str, selector: str) -> dict[str, float]:
            return self.vector(f"sum by ({self.label}) ({self.selected(self.metric + suffix, selector)})")

        counts = summed("_count", self.base)
        if not counts:
            return {}
        sums, errors = summed("_sum", self.base), summed("_count", f"{self.base},{self.failed}")
        buckets = f"sum by ({self.label}, le) ({self.selected(self.metric + '_bucket', self.base)})"
        quantiles = {name: self.vector(f"histogram_quantile({q}, {buckets})") for name, q in QUANTILES}
        return _stats(counts, sums, errors, quantiles)


def latency_rows(
    url: str, service: str, window_s: float | None = None, at: float | None = None
) -> list[tuple[str, str, OperationStats]]:
    """``(kind, name, stats)`` per tool, MCP method and operation of ``service``; seconds."""
    rows: list[tuple[str, str, OperationStats]] = []
    for kind, metric, label, extra, failed in _ROWS:
        query = _Query(url, metric, label, f'service_name="{service}",{extra}', failed, window_s, at)
        found = query.native() or query.classic()
        rows += [(kind, name, stats) for name, stats in sorted(found.items())]
    return rows


def _stats(
    counts: Mapping[str, float],
    sums: Mapping[str, float],
    errors: Mapping[str, float],
    quantiles: Mapping[str, Mapping[str, float]],
) -> dict[str, OperationStats]:
    result: dict[str, OperationStats] = {}
    for name, count in counts.items():
        if count <= 0:
            continue
        values: dict[str, Any] = {key: quantiles[key].get(name) for key, _ in QUANTILES}
        total = sums.get(name, 0.0)
        result[name] = OperationStats(
            count=round(count),
            errors=round(errors.get(name, 0.0)),
            sum=total,
            mean=total / count,
            **values,
        )
    return result
