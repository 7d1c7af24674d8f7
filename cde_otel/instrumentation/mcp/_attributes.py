"""Bounded attribute values: what an untrusted MCP client sends never becomes a metric series of its own.

* a method is one of the MCP specification's, else ``_OTHER`` (metrics and span name);
* a tool or prompt name is one the server registered - it listed it in a ``tools/list`` /
  ``prompts/list`` result, or a call to it succeeded - else ``_OTHER`` on metrics and the span
  name is the bare method (the conventions' form when no low-cardinality target exists); at most
  :data:`MAX_KNOWN_NAMES` names per kind are learned, so a server with more cannot grow it either;
* every string value is cut at :data:`MAX_VALUE` characters (span attributes too);
* the client's name and version (session metric only) are capped and, past
  :data:`MAX_CLIENTS` distinct values, ``_OTHER``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import trace

from cde_otel.semconv import OTHER_VALUE

#: The conventions' fallback for a value outside a bounded set.
OTHER = OTHER_VALUE

#: Longest string attribute value recorded (span and metric).
MAX_VALUE = 256
#: Registered names learned per kind (tools, prompts): the backstop of a server that lists more.
MAX_KNOWN_NAMES = 1024
#: Distinct client names (and versions) kept on the session metric before ``_OTHER``.
MAX_CLIENTS = 32
_MAX_CLIENT_VALUE = 64

#: Every method of the MCP specification (2025-11-25 and the 2026 drafts' additions): requests
#: and notifications, either direction (a server also receives results' notifications).
MCP_METHODS = frozenset(
    {
        "initialize",
        "ping",
        "tools/list",
        "tools/call",
        "prompts/list",
        "prompts/get",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
        "logging/setLevel",
        "completion/complete",
        "sampling/createMessage",
        "elicitation/create",
        "roots/list",
        "tasks/get",
        "tasks/result",
        "tasks/list",
        "tasks/cancel",
        "server/discover",
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/progress",
        "notifications/message",
        "notifications/roots/list_changed",
        "notifications/tools/list_changed",
        "notifications/prompts/list_changed",
        "notifications/resources/list_changed",
        "notifications/resources/updated",
        "notifications/elicitation/complete",
        "notifications/tasks/status",
    }
)
TOOL = "tools/call"
PROMPT = "prompts/get"
_LISTS = {"tools/list": TOOL, "prompts/list": PROMPT}


def capped(value: object, limit: int = MAX_VALUE) -> str:
    """``value`` as text of at most ``limit`` characters (cut before conversion when it is a str)."""
    text = value if isinstance(value, str) else str(value)
    return text[:limit] if len(text) > limit else text


def bounded_method(method: str) -> str:
    return method if method in MCP_METHODS else OTHER


class KnownNames:
    """The tool and prompt names this server registered, learned from what it answers."""

    def __init__(self, limit: int = MAX_KNOWN_NAMES) -> None:
        self._limit = limit
        self._names: dict[str, set[str]] = {TOOL: set(), PROMPT: set()}
        self._lock = threading.Lock()

    def knows(self, method: str, name: str) -> bool:
        names = self._names.get(method)
        return names is not None and name in names

    def learn(self, method: str, names: Iterable[str]) -> None:
        known = self._names.get(method)
        if known is None:
            return
        with self._lock:
            for name in names:
                if len(known) >= self._limit:
                    return
                if isinstance(name, str) and 0 < len(name) <= MAX_VALUE:
                    known.add(name)

    def learn_listed(self, method: str, result: Any) -> None:
        """Names in a ``tools/list`` or ``prompts/list`` result, whatever the SDK's result shape."""
        kind = _LISTS.get(method)
        if kind is None or result is None:
            return
        root = getattr(result, "root", result)
        key = "tools" if kind == TOOL else "prompts"
        items = root.get(key) if isinstance(root, Mapping) else getattr(root, key, None)
        if isinstance(items, list | tuple):
            self.learn(kind, (_item_name(item) for item in items[: self._limit]))


def _item_name(item: Any) -> str:
    name = item.get("name") if isinstance(item, Mapping) else getattr(item, "name", None)
    return name if isinstance(name, str) else ""


class BoundedValues:
    """The first :data:`MAX_CLIENTS` distinct values of one attribute, then ``_OTHER``."""

    def __init__(self, limit: int = MAX_CLIENTS) -> None:
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str | None) -> str | None:
        if value is None:
            return None
        value = capped(value, _MAX_CLIENT_VALUE)
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) < self._limit:
                self._seen.add(value)
                return value
        return OTHER


# -- the framework's own registry -------------------------------------------------------------
_MANAGERS = {TOOL: ("_tool_manager", "_tools"), PROMPT: ("_prompt_manager", "_prompts")}
_high_level: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def registered(server: Any, method: str, name: str) -> bool:
    """Whether ``server`` (a high-level FastMCP/MCPServer, or the low-level server under one) has
    a tool or prompt of that name in its registry; False when it keeps none we can read (then
    what it lists, or answers successfully, tells)."""
    manager_attr, registry_attr = _MANAGERS.get(method, ("", ""))
    if not manager_attr or server is None:
        return False
    components = getattr(getattr(server, "_local_provider", None), "_components", None)
    if isinstance(components, Mapping):  # FastMCP 3+: "tool:<name>@<version>" keys
        prefix = f"{'tool' if method == TOOL else 'prompt'}:{name}@"
        return prefix in components or any(str(key).startswith(prefix) for key in list(components)[:MAX_KNOWN_NAMES])
    owner = server if hasattr(server, manager_attr) else _owner_of(server)
    registry = getattr(getattr(owner, manager_attr, None), registry_attr, None)
    return isinstance(registry, Mapping) and name in registry


def _owner_of(lowlevel: Any) -> Any:
    """The high-level server behind a low-level one: fastmcp 2.x keeps a reference to it; the mcp
    1.x SDK's FastMCP registered its bound methods as the low-level handlers."""
    try:
        if lowlevel in _high_level:
            return _high_level[lowlevel]
    except TypeError:
        return None
    owner = getattr(lowlevel, "fastmcp", None)
    if owner is None:
        handlers = getattr(lowlevel, "request_handlers", None)
        for handler in handlers.values() if isinstance(handlers, Mapping) else ():
            for cell in getattr(handler, "__closure__", None) or ():
                try:
                    bound = getattr(cell.cell_contents, "__self__", None)
                except ValueError:  # an empty cell
                    continue
                if hasattr(bound, "_tool_manager"):
                    owner = bound
                    break
            if owner is not None:
                break
    _high_level[lowlevel] = owner
    return owner


def cap_attributes(span: trace.Span) -> None:
    """Caps every string attribute already on ``span`` (an adopted span: what the framework set on it)."""
    attributes = getattr(span, "attributes", None)  # the SDK's span
    if isinstance(attributes, Mapping):
        for key, value in list(attributes.items()):
            if isinstance(value, str) and len(value) > MAX_VALUE:
                span.set_attribute(key, value[:MAX_VALUE])
