"""Ships the local OTLP-JSON files to a collector over OTLP/HTTP, resumably.

Each line is one complete OTLP/JSON export request; up to ``lines_per_batch`` of them are merged into
one request (their ``resourceSpans``/``resourceMetrics``/``resourceLogs`` lists concatenated) and
POSTed as ``application/json`` to ``<target>/v1/<signal>``. After each accepted batch the offset is
saved (:mod:`cde_otel.cli._export_state`), so a stop at any moment resends nothing the collector
accepted. 429/502/503/504 and connection failures are retried a bounded number of times (tenacity),
then the export stops with E406; any other error status stops it with E407.

A line without its newline at the end of the file being written is left for the next export; in a
rotated (closed) file it can never be completed and is skipped, like any line that is not JSON.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from cde_otel.cli._export_state import ExportState, FileIdentity
from cde_otel.cli._http import UNAVAILABLE_STATUSES, HttpStatusError, backend_error, request
from cde_otel.semconv import SIGNALS

_ITEMS = {"traces": ("resourceSpans", "scopeSpans", "spans"),
          "metrics": ("resourceMetrics", "scopeMetrics", "metrics"),
          "logs": ("resourceLogs", "scopeLogs", "logRecords")}  # fmt: skip
_PARTIAL = {"traces": "rejectedSpans", "metrics": "rejectedDataPoints", "logs": "rejectedLogRecords"}
MAX_BATCH_BYTES = 4 * 1024 * 1024


@dataclass(slots=True)
class SignalReport:
    files: int = 0
    batches: int = 0
    lines: int = 0
    items: int = 0  # spans, metrics or log records sent
    skipped_lines: int = 0
    rejected: int = 0  # items the collector reported as rejected (OTLP partial success)

    def as_dict(self) -> dict[str, int]:
        return {
            "files": self.files,
            "batches": self.batches,
            "lines": self.lines,
            "items": self.items,
            "skipped_lines": self.skipped_lines,
            "rejected": self.rejected,
        }


@dataclass(slots=True)
class ExportReport:
    target: str
    signals: dict[str, SignalReport] = field(default_factory=dict)
    complete: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "complete": self.complete,
            "signals": {name: report.as_dict() for name, report in self.signals.items()},
        }


@dataclass(slots=True)
class _Line:
    end: int  # offset just past this line
    request: dict[str, Any] | None  # None: skipped (not JSON, or truncated in a closed file)


def _complete_lines(handle: BinaryIO, offset: int, live: bool) -> Iterator[_Line]:
    handle.seek(offset)
    for raw in handle:
        offset += len(raw)
        if not raw.endswith(b"\n") and live:
            return  # still being written: the next export sends it
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = None
        yield _Line(offset, parsed if isinstance(parsed, dict) else None)


def _count_items(signal: str, request: dict[str, Any]) -> int:
    outer, scope, items = _ITEMS[signal]
    return sum(len(s.get(items) or ()) for r in request.get(outer) or () for s in r.get(scope) or ())


class Exporter:
    def __init__(
        self, directory: Path, target: str, *, attempts: int = 5, lines_per_batch: int = 64, timeout_s: float = 10.0
    ) -> None:
        self.directory = directory
        self.target = target.rstrip("/")
        self.state = ExportState(directory, self.target)
        self.lines_per_batch = lines_per_batch
        self.timeout_s = timeout_s
        self._budget: int | None = None
        self._post = retry(
            retry=retry_if_exception(_worth_retrying),
            stop=stop_after_attempt(max(attempts, 1)),
            wait=wait_exponential(multiplier=0.2, max=5.0),
            reraise=True,
        )(self._post_once)

    def _post_once(self, signal: str, body: bytes) -> bytes:
        url = f"{self.target}/v1/{signal}"
        return request(url, data=body, headers={"Content-Type": "application/json"}, timeout=self.timeout_s)

    def send(self, signal: str, body: bytes) -> dict[str, Any]:
        try:
            answer = self._post(signal, body)
        except (OSError, HttpStatusError) as error:
            raise backend_error("The collector", self.target, error) from error
        try:
            parsed = orjson.loads(answer) if answer.strip() else {}
        except orjson.JSONDecodeError:
            parsed = {}
        return parsed if isinstance(parsed, dict) else {}

    def export(self, files: dict[str, list[Path]], max_batches: int | None = None) -> ExportReport:
        """Sends what is new in ``files`` (per signal, oldest first); stops after ``max_batches`` POSTs."""
        report = ExportReport(self.target)
        self._budget = max_batches
        for signal in SIGNALS:
            if signal not in files:
                continue
            report.signals[signal] = SignalReport()
            for path in files[signal]:
                if self._budget == 0:
                    break
                self._export_file(signal, path, report.signals[signal])
        report.complete = self._budget != 0 or not self._has_more(files)
        # Every file still in the directory keeps its entry, also those of signals not exported this time.
        self.state.forget_all_but(key for path in self.directory.glob("*.jsonl") if (key := _key(path)))
        self.state.save()
        return report

    def _has_more(self, files: dict[str, list[Path]]) -> bool:
        """Is anything left unsent (after the batch budget ran out)?"""
        for paths in files.values():
            for path in paths:
                try:
                    with path.open("rb") as handle:
                        identity = FileIdentity.of(handle)
                        if self.state.offset(identity, handle) < handle.seek(0, 2):
                            return True
                except FileNotFoundError:
                    continue
        return False

    def _spend_batch(self) -> bool:
        """Counts one POST against ``--max-batches``; True when the budget is now spent."""
        if self._budget is None:
            return False
        self._budget -= 1
        return self._budget == 0

    def _export_file(self, signal: str, path: Path, report: SignalReport) -> None:
        try:
            handle = path.open("rb")
        except FileNotFoundError:  # rotated out since the listing
            return
        with handle:
            identity = FileIdentity.of(handle)
            offset = self.state.offset(identity, handle)
            if offset > handle.seek(0, 2):
                offset = 0  # shorter than what was sent: not the file we knew
            report.files += 1
            outer = _ITEMS[signal][0]
            batch: list[dict[str, Any]] = []
            size, end = 0, offset
            for line in _complete_lines(handle, offset, live=path.name == f"{signal}.jsonl"):
                if line.request is None:
                    report.skipped_lines += 1
                else:
                    batch.append(line.request)
                    size += line.end - end
                end = line.end
                if len(batch) >= self.lines_per_batch or size >= MAX_BATCH_BYTES:
                    self._deliver(signal, outer, batch, report)
                    self.state.advance(identity, path.name, end)
                    self.state.save()
                    batch, size = [], 0
                    if self._spend_batch():
                        return
            if batch:
                self._deliver(signal, outer, batch, report)
                self._spend_batch()
            if end != offset:
                self.state.advance(identity, path.name, end)
                self.state.save()

    def _deliver(self, signal: str, outer: str, batch: list[dict[str, Any]], report: SignalReport) -> None:
        merged = {outer: [item for request in batch for item in request.get(outer) or ()]}
        answer = self.send(signal, orjson.dumps(merged))
        report.batches += 1
        report.lines += len(batch)
        report.items += sum(_count_items(signal, request) for request in batch)
        partial = answer.get("partialSuccess") or {}
        report.rejected += int(partial.get(_PARTIAL[signal], 0) or 0)


def _key(path: Path) -> str | None:
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return f"{status.st_dev}:{status.st_ino}"


def _worth_retrying(error: BaseException) -> bool:
    if isinstance(error, HttpStatusError):
        return error.status in UNAVAILABLE_STATUSES
    return isinstance(error, OSError)
