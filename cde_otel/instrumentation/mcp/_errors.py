"""The outcome of one MCP request, by the OpenTelemetry MCP conventions.

``error.type`` is the conventions' value, never ours:

* a JSON-RPC error reply: its code (``-32601``), also as ``rpc.response.status_code``;
* a tool result with ``isError`` - including a tool that raised, which the framework turned
  into one - and a result whose payload reports an error (the upstream orchestrator's
  ``{"status": "error", "error_code": ...}`` envelope): ``tool_error``;
* an exception that ends the request with no reply the instrumentation saw: the JSON-RPC code
  the SDK answers for it when it is one (``MCPError``, pydantic's ``ValidationError``:
  ``-32602``), else its class (the root of the cause chain: what the tool raised).

Our CDE code (``E104``), wherever it is - on the exception chain, in an
``ErrorFormatter.to_json`` payload, in the upstream envelope, or inside the error a framework's
output validation raised about that envelope - goes in ``cde.error.code``. The status
description is the error's message, scrubbed of secrets and cut at 256 characters.
"""

from __future__ import annotations

import asyncio
import json
import re
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace

from cde_otel.instrumentation.mcp._attributes import MAX_VALUE, capped
from cde_otel.instrumentation.mcp._results import first_text, tool_result_parts
from cde_otel.redaction import scrub_text
from cde_otel.semconv import TOOL_ERROR

# A CDE (or upstream orchestrator) error code: E104, E999...
_CODE = re.compile(r"[A-Z]{1,4}\d{2,4}")
# The upstream envelope as quoted by a validation error (a dict's repr or JSON): 'error_code': 'E104'.
_QUOTED_CODE = re.compile(r"""["']error_code["']\s*:\s*["']([A-Z]{1,4}\d{2,4})["']""")
# The JSON-RPC code of invalid params (what the SDKs answer for a pydantic ValidationError).
_INVALID_PARAMS = "-32602"
_INVALID_PARAMS_MESSAGE = "Invalid request parameters"
_MAX_PAYLOAD_SCAN = 65_536
# How far past a cut the scrubber looks, so that a secret straddling the cut is still recognised.
_SCRUB_WINDOW = 4096
_MAX_STACK = 8192


@dataclass(frozen=True, slots=True)
class Failure:
    error_type: str
    description: str
    code: str | None = None  # cde.error.code
    status_code: str | None = None  # rpc.response.status_code


def scrubbed_prefix(text: str, length: int = MAX_VALUE) -> str:
    """The first ``length`` characters of ``text``, scrubbed *before* the cut (a cut could leave half
    a secret that no longer looks like one); only a window past the cut is scanned."""
    return scrub_text(text[: length + _SCRUB_WINDOW])[:length]


def exception_attributes(error: BaseException) -> dict[str, str]:
    """An ``exception`` event's message and stack trace, scrubbed and bounded (the class stays)."""
    stack = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    if len(stack) > _MAX_STACK:
        stack = "..." + stack[-_MAX_STACK:]  # the end holds the exception and the nearest frames
    return {"exception.message": scrubbed_prefix(str(error), 1024), "exception.stacktrace": scrub_text(stack)}


def failure_of(result: Any, error: BaseException | None, is_tool_call: bool) -> Failure | None:
    """The failure of a request that answered ``result`` (or raised ``error``), else None."""
    if result is None:
        return _raised(error) if error is not None else None
    root = getattr(result, "root", result)  # mcp 1.x wraps results in a ServerResult
    rpc_code = getattr(root, "code", None)
    message = getattr(root, "message", None)
    if isinstance(rpc_code, int) and not isinstance(rpc_code, bool) and isinstance(message, str):
        code = str(rpc_code)  # a JSON-RPC ErrorData
        return Failure(code, scrubbed_prefix(message), _code_in(error), code)
    if not is_tool_call:
        return None
    is_error, content, structured = tool_result_parts(root)
    payload = _error_payload(structured, content)
    if not is_error and payload is None:
        return None
    cde_code, title = payload if payload is not None else (None, "")
    if cde_code is None and error is not None:
        cde_code = _code_in(error)
    if cde_code is None and is_error:
        cde_code = _quoted_code(first_text({"content": content}) or "")
    text = title or (str(error) if error is not None else first_text({"content": content}) or "")
    return Failure(TOOL_ERROR, scrubbed_prefix(text), cde_code)


def _raised(error: BaseException) -> Failure:
    rpc = _jsonrpc_code(error)
    if rpc is not None:
        data = getattr(error, "error", None)
        wire = getattr(data, "message", None)  # what the reply says; pydantic's text quotes the input
        message = wire if isinstance(wire, str) else _INVALID_PARAMS_MESSAGE if _is_pydantic(error) else str(error)
        return Failure(rpc, scrubbed_prefix(message), _code_in(error), rpc)
    message = scrubbed_prefix(str(error))
    return Failure(_root(error).__class__.__qualname__, message, _code_in(error))


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not s for s in seen) and len(seen) < 16:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _root(error: BaseException) -> BaseException:
    """What the tool raised: the end of the explicit cause chain (frameworks wrap it ``from`` it)."""
    current = error
    for _ in range(16):
        if current.__cause__ is None:
            break
        current = current.__cause__
    return current


def _code_in(error: BaseException | None) -> str | None:
    """The CDE code on the chain: a coded exception's ``.code``, or the upstream envelope a
    validation error quotes (its ``.instance``, or its message)."""
    if error is None:
        return None
    for current in _chain(error):
        code = getattr(current, "code", None)
        if isinstance(code, str) and _CODE.fullmatch(code):
            return code
        for value in _invalid_values(current):
            found = _coded(value)
            if found is not None:
                return found[0]
        quoted = _quoted_code(str(current)[:_MAX_PAYLOAD_SCAN])
        if quoted is not None:
            return quoted
    return None


def _invalid_values(error: BaseException) -> list[Mapping[str, Any]]:
    """The values a validation error rejected: jsonschema's ``.instance``, pydantic's ``errors()``
    inputs (its message elides the middle of a long value, so the code may be missing there)."""
    instance = getattr(error, "instance", None)
    if isinstance(instance, Mapping):
        return [instance]
    if not _is_pydantic(error):
        return []
    try:
        items = error.errors(include_url=False)[:8]  # type: ignore[attr-defined]
    except Exception:
        return []
    return [item["input"] for item in items if isinstance(item.get("input"), Mapping)]


def _quoted_code(text: str) -> str | None:
    if "error_code" not in text:
        return None
    match = _QUOTED_CODE.search(text[:_MAX_PAYLOAD_SCAN])
    return match.group(1) if match else None


def _jsonrpc_code(error: BaseException) -> str | None:
    for current in _chain(error):
        data = getattr(current, "error", None)  # McpError/MCPError carry an ErrorData
        code = getattr(data, "code", None)
        if isinstance(code, int) and not isinstance(code, bool):
            return str(code)
    if _is_pydantic(error):
        return _INVALID_PARAMS
    return None


def _is_pydantic(error: BaseException) -> bool:
    return type(error).__name__ == "ValidationError" and type(error).__module__.startswith("pydantic")


def _error_payload(structured: Any, content: Any) -> tuple[str, str] | None:
    """(code, title) of a coded error payload: ``ErrorFormatter.to_json`` (with isError) or the
    upstream orchestrator's ``{"status": "error", "error_code": ...}`` envelope (a normal result)."""
    if isinstance(structured, Mapping):
        found = _coded(structured)
        if found is None and isinstance(structured.get("result"), Mapping):
            found = _coded(structured["result"])  # FastMCP's wrapped output {"result": ...}
        if found is not None:
            return found
    text = first_text({"content": content}) if content else None
    if text is None or len(text) > _MAX_PAYLOAD_SCAN or not text.startswith("{"):
        return None
    if '"code"' not in text and '"error_code"' not in text:
        return None  # cheap test first: most results are not errors
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return _coded(parsed) if isinstance(parsed, Mapping) else None


def _coded(payload: Mapping[str, Any]) -> tuple[str, str] | None:
    code = payload.get("code")
    if isinstance(code, str) and _CODE.fullmatch(code) and "recoverable" in payload:
        return code, str(payload.get("message") or payload.get("title") or "")
    if payload.get("status") == "error":
        upstream = payload.get("error_code")
        if isinstance(upstream, str) and upstream:
            return capped(upstream, 32), str(payload.get("message") or payload.get("error_type") or "")
    return None


def cancelled(error: BaseException | None) -> bool:
    """A request the client cancelled (or a server shutting down) ended, it did not fail."""
    return error is not None and (isinstance(error, asyncio.CancelledError) or type(error).__name__ == "Cancelled")


def has_exception_event(span: trace.Span) -> bool:
    events = getattr(span, "events", None)  # the SDK's span; another API implementation: record ours
    return bool(events) and any(getattr(e, "name", None) == "exception" for e in events)  # type: ignore[union-attr]
