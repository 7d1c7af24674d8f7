"""The stock OTLP/HTTP span and log exporters, with their requests encoded by :mod:`._otlp_proto`.

Everything else is the installed exporter's own: endpoint, headers, compression, timeout, retries,
size limit and its self-metrics. The subclass's ``export`` *is* the stock ``export`` (the same code
object), run with its module's ``encode_spans`` / ``encode_logs`` bound to ours: a release whose
``export`` encodes some other way keeps its own. Our bytes are the stock encoder's byte for byte
(see :mod:`._otlp_proto`); a batch ours cannot encode exactly is encoded by the stock encoder.
Each span is queued slim and each record encoded as it ends (``queue_form``, :mod:`._encoded`).
"""

from __future__ import annotations

import logging
import types
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs as stock_encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as stock_encode_spans
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as StockLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as StockSpanExporter

from cde_otel._swallowed import swallowed
from cde_otel.telemetry import _otlp_proto
from cde_otel.telemetry._encoded import EncodedItem, slim_span

_log = logging.getLogger("cde_otel.telemetry")


class _Encoded:
    """What the stock ``export`` gets back from ``encode_*``: it asks for the request's bytes."""

    __slots__ = ("_batch", "_encode", "_stock")

    def __init__(self, batch: Sequence[Any], encode: Callable[[Sequence[Any]], bytes], stock: Callable[..., Any]):
        self._batch = batch
        self._encode = encode
        self._stock = stock

    def SerializePartialToString(self) -> bytes:  # the protobuf message's method
        try:
            return self._encode(self._batch)
        except Exception:  # e.g. an int beyond int64: the stock encoder's own handling (and log) decides
            swallowed("export.encode", _log, "cde-otel: the stock encoder takes an OTLP batch ours could not encode")
        # Records encoded as they ended are ours already (slim spans read as spans to the stock encoder);
        # two requests' bytes joined are one request with both's resources (protobuf merges
        # repeated fields by concatenation).
        encoded = [item for item in self._batch if type(item) is EncodedItem]
        others = [item for item in self._batch if type(item) is not EncodedItem]
        return (self._encode(encoded) if encoded else b"") + bytes(self._stock(others).SerializePartialToString())

    SerializeToString = SerializePartialToString


def with_encoder(export: Callable[..., Any], name: str, encoder: Callable[..., Any]) -> Callable[..., Any]:
    """``export`` run with the global ``name`` bound to ``encoder``; ``export`` itself when it does not
    use that name (another release): the stock behaviour, untouched."""
    if name not in export.__code__.co_names:
        return export
    namespace = dict(export.__globals__)
    namespace[name] = encoder
    clone = types.FunctionType(export.__code__, namespace, export.__name__, export.__defaults__, export.__closure__)
    clone.__kwdefaults__ = export.__kwdefaults__
    clone.__qualname__ = export.__qualname__
    clone.__doc__ = export.__doc__
    return clone


_SPANS = _otlp_proto.Envelope()
_LOGS = _otlp_proto.Envelope()


def _encode_spans(spans: Sequence[Any]) -> _Encoded:
    return _Encoded(spans, lambda batch: _otlp_proto.encode_spans(_SPANS, batch), stock_encode_spans)


def _encode_logs(records: Sequence[Any]) -> _Encoded:
    return _Encoded(records, lambda batch: _otlp_proto.encode_logs(_LOGS, batch), stock_encode_logs)


class OTLPSpanExporter(StockSpanExporter):
    """``opentelemetry-exporter-otlp-proto-http``'s span exporter, encoding about three times faster."""

    export = with_encoder(StockSpanExporter.export, "encode_spans", _encode_spans)
    queue_form = staticmethod(slim_span)  # see ._encoded


class OTLPLogExporter(StockLogExporter):
    """``opentelemetry-exporter-otlp-proto-http``'s log exporter, encoding about three times faster."""

    export = with_encoder(StockLogExporter.export, "encode_logs", _encode_logs)
    queue_form = staticmethod(_otlp_proto.encoded_log)  # see ._encoded
