"""What a request's span carries from the request itself: its name (method and registered tool or
prompt), ids, resource URI and work arguments, bounded and redacted (a client's input never
reaches a span as given). Used by :class:`~cde_otel.instrumentation.mcp._telemetry.MCPTelemetry`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cde_otel.instrumentation.mcp._attributes import PROMPT, TOOL, bounded_method, capped
from cde_otel.instrumentation.mcp._errors import scrubbed_prefix
from cde_otel.redaction import is_content_key, is_sensitive_key, redact_mapping
from cde_otel.semconv import (
    ATTR_FEATURE_PHASE,
    ATTR_GEN_AI_OPERATION_NAME,
    ATTR_GEN_AI_PROMPT_NAME,
    ATTR_GEN_AI_TOOL_CALL_ARGUMENTS,
    ATTR_GEN_AI_TOOL_NAME,
    ATTR_JSONRPC_REQUEST_ID,
    ATTR_MCP_METHOD_NAME,
    ATTR_MCP_RESOURCE_URI,
    ATTR_MCP_SESSION_ID,
    ATTR_PROMPT_LENGTH,
    EXECUTE_TOOL,
    FEATURE_PHASES,
    INVALID_PHASE,
    WORK_ARGUMENTS,
)

_RESOURCE_METHODS = frozenset({"resources/read", "resources/subscribe", "resources/unsubscribe"})
TARGET_ATTRS = {TOOL: ATTR_GEN_AI_TOOL_NAME, PROMPT: ATTR_GEN_AI_PROMPT_NAME}


def request_target(method: str, params: Mapping[str, Any] | None) -> str | None:
    """The tool or prompt name a ``tools/call``/``prompts/get`` names, capped; else None."""
    if params and method in ("tools/call", "prompts/get"):
        name = params.get("name")
        if isinstance(name, str) and name:
            return capped(name)
    return None


def span_name(method: str, target: str | None) -> str:
    bounded = bounded_method(method)
    return f"{bounded} {target}" if target else bounded


def request_attrs(
    method: str,
    params: Mapping[str, Any] | None,
    target: str | None,
    request_id: Any,
    session_id: Any,
    *,
    redact_keys: tuple[str, ...],
    capture_content: bool,
    capture_max_length: int,
) -> dict[str, Any]:
    """The span attributes of one request from what the client sent (method, target, ids, resource, arguments)."""
    attrs: dict[str, Any] = {ATTR_MCP_METHOD_NAME: capped(method)}
    if method == TOOL:
        attrs[ATTR_GEN_AI_OPERATION_NAME] = EXECUTE_TOOL
    if target is not None:
        attrs[TARGET_ATTRS[method]] = target
    if request_id is not None:
        attrs[ATTR_JSONRPC_REQUEST_ID] = capped(request_id)
    if session_id:
        attrs[ATTR_MCP_SESSION_ID] = capped(session_id)
    if params:
        if method in _RESOURCE_METHODS:
            uri = params.get("uri")
            if uri is not None:
                attrs[ATTR_MCP_RESOURCE_URI] = scrubbed_prefix(str(uri))  # ?token=... never recorded
        arguments = params.get("arguments")
        if isinstance(arguments, Mapping) and arguments:
            _argument_attrs(arguments, attrs, redact_keys, capture_content, capture_max_length)
    return attrs


def _argument_attrs(
    arguments: Mapping[str, Any],
    attrs: dict[str, Any],
    extra: tuple[str, ...],
    capture_content: bool,
    capture_max_length: int,
) -> None:
    for key, value in arguments.items():
        attr = WORK_ARGUMENTS.get(key)
        if attr is not None:
            if isinstance(value, str | int) and not is_sensitive_key(key, extra):
                if attr == ATTR_FEATURE_PHASE and value not in FEATURE_PHASES:
                    attrs[attr] = INVALID_PHASE  # never the client's text as given
                else:
                    attrs[attr] = scrubbed_prefix(str(value))
        elif isinstance(value, str) and is_content_key(key):
            attrs[ATTR_PROMPT_LENGTH] = len(value)
    if capture_content:
        redacted = redact_mapping(arguments, extra, content_max_length=capture_max_length)
        attrs[ATTR_GEN_AI_TOOL_CALL_ARGUMENTS] = json.dumps(redacted, default=str)[: capture_max_length * 8]
