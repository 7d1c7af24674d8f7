"""MCP sessions: who called (the client's name and version) and how long the session lasted.

A session is keyed by the framework's own per-connection object (mcp 1.x ``ServerSession``,
mcp 2.x ``Connection``), held weakly. It opens when its first request is seen and closes when
the framework tears the connection down; then one ``mcp.server.session.duration`` record
(seconds) carries the transport, protocol and the client's bounded name and version.

The client's name and version come from ``initialize`` (``clientInfo``) or, where a newer
protocol sends them with each request, from ``_meta["io.modelcontextprotocol/clientInfo"]``.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

from opentelemetry.metrics import Histogram

from cde_otel.instrumentation.mcp._attributes import BoundedValues, capped
from cde_otel.semconv import (
    ATTR_MCP_CLIENT_NAME,
    ATTR_MCP_CLIENT_VERSION,
    ATTR_MCP_PROTOCOL_VERSION,
    ATTR_NETWORK_PROTOCOL_NAME,
    ATTR_NETWORK_PROTOCOL_VERSION,
    ATTR_NETWORK_TRANSPORT,
)

CLIENT_INFO_META_KEY = "io.modelcontextprotocol/clientInfo"
_MAX_CLIENT_FIELD = 128
#: Attributes of the transport a metric may carry (the rest of a request's are per request or per connection).
METRIC_TRANSPORT_ATTRS = (
    ATTR_NETWORK_TRANSPORT,
    ATTR_NETWORK_PROTOCOL_NAME,
    ATTR_NETWORK_PROTOCOL_VERSION,
    ATTR_MCP_PROTOCOL_VERSION,
)


class MCPSession:
    __slots__ = (
        "_info",
        "_noted_transport",
        "client_name",
        "client_version",
        "span_attributes",
        "start",
        "transport_attrs",
    )

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.client_name: str | None = None
        self.client_version: str | None = None
        self.transport_attrs: dict[str, str] = {}
        #: What every request's span carries about the session (read-only for callers).
        self.span_attributes: dict[str, str] = {}
        self._info: Any = None  # the framework's client description noted last (its requests share one)
        self._noted_transport: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, info: Any) -> MCPSession:
        session = cls()
        session.note_client(info)
        return session

    def note(self, transport_attrs: Mapping[str, Any], info: Any) -> dict[str, str]:
        """Keeps what one request shows of the session (its transport, the client's description, if
        any); returns :attr:`span_attributes`. What was noted from the very same objects is skipped."""
        if transport_attrs is not self._noted_transport:
            self.transport_attrs.update((k, v) for k, v in transport_attrs.items() if isinstance(v, str))
            self._noted_transport = transport_attrs
        if info is not None and info is not self._info:
            self.note_client(info)
            # The framework's own description (held by its session anyway) is remembered; a mapping the
            # client sent with one request is not kept beyond it.
            self._info = None if isinstance(info, Mapping) else info
        return self.span_attributes

    def note_client(self, info: Any) -> None:
        name, version = client_info(info)
        if name is not None:
            self.client_name = name
            self.client_version = version
            attrs = {ATTR_MCP_CLIENT_NAME: name}
            if version is not None:
                attrs[ATTR_MCP_CLIENT_VERSION] = version
            self.span_attributes = attrs


def client_info(info: Any) -> tuple[str | None, str | None]:
    """(name, version) of an ``Implementation`` (model or dict), each capped; (None, None) if absent."""
    if info is None:
        return None, None
    if isinstance(info, Mapping):
        name, version = info.get("name"), info.get("version")
    else:
        name, version = getattr(info, "name", None), getattr(info, "version", None)
    return (
        capped(name, _MAX_CLIENT_FIELD) if isinstance(name, str) and name else None,
        capped(version, _MAX_CLIENT_FIELD) if isinstance(version, str) and version else None,
    )


class Sessions:
    """Open sessions by their framework key; records the session duration when one closes."""

    def __init__(self, duration: Histogram | None) -> None:
        self._duration = duration
        self._open: weakref.WeakKeyDictionary[Any, MCPSession] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._names = BoundedValues()
        self._versions = BoundedValues()

    def get(self, key: Any, *, opens: bool = True) -> MCPSession | None:
        """The open session of ``key``; a new one when ``opens`` (a framework whose connections
        outside a handshake are per-request opens one only on ``initialize``)."""
        if key is None:
            return None
        try:
            found = self._open.get(key)
            if found is None and opens:
                with self._lock:
                    found = self._open.setdefault(key, MCPSession())
        except TypeError:  # not weak-referenceable: no session to follow
            return None
        return found

    def close(self, key: Any) -> None:
        try:
            with self._lock:
                session = self._open.pop(key, None)
        except TypeError:
            return
        if session is None or self._duration is None:
            return
        attrs: dict[str, str] = {k: v for k, v in session.transport_attrs.items() if k in METRIC_TRANSPORT_ATTRS}
        name, version = self._names(session.client_name), self._versions(session.client_version)
        if name is not None:
            attrs[ATTR_MCP_CLIENT_NAME] = name
        if version is not None:
            attrs[ATTR_MCP_CLIENT_VERSION] = version
        self._duration.record(time.monotonic() - session.start, attrs)
