"""The parts of a tool result, whatever the SDK generation's shape (a model, mcp 1.x's
``ServerResult`` wrapper, or the serialized dict), and the ids a result names."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace

from cde_otel.instrumentation.mcp._attributes import capped
from cde_otel.semconv import ATTR_FEATURE_ID, ATTR_PROJECT_ID

_MAX_PAYLOAD_SCAN = 65_536


def tool_result_parts(root: Any) -> tuple[bool, Any, Any]:
    if isinstance(root, Mapping):
        return root.get("isError") is True, root.get("content"), root.get("structuredContent")
    is_error = getattr(root, "isError", None)
    if is_error is None:
        is_error = getattr(root, "is_error", None)
    structured = getattr(root, "structuredContent", None)
    if structured is None:
        structured = getattr(root, "structured_content", None)
    return is_error is True, getattr(root, "content", None), structured


def first_text(result: Any) -> str | None:
    root = getattr(result, "root", result)
    _, content, _ = tool_result_parts(root)
    if not isinstance(content, list | tuple) or not content:
        return None
    item = content[0]
    text = item.get("text") if isinstance(item, Mapping) else getattr(item, "text", None)
    return text if isinstance(text, str) else None


def result_ids(result: Any, span: trace.Span, known: Mapping[str, Any]) -> None:
    """Ids in a tool's result (a created feature's, the project's): on the span too, so one tag
    finds the whole workflow. Structured results are read always; a text result is parsed only
    when the call named no feature (so, in practice, once per workflow: its start)."""
    root = getattr(result, "root", result)
    is_error, content, structured = tool_result_parts(root)
    if is_error:
        return
    if isinstance(structured, Mapping) and set_ids(structured, span, known):
        return
    if ATTR_FEATURE_ID in known:
        return
    text = first_text({"content": content}) if content else None
    if text is None or len(text) > _MAX_PAYLOAD_SCAN or not text.startswith("{") or '"feature_id"' not in text:
        return
    try:
        parsed = json.loads(text)
    except ValueError:
        return
    if isinstance(parsed, Mapping):
        set_ids(parsed, span, known)


def set_ids(found: Mapping[str, Any], span: trace.Span, known: Mapping[str, Any]) -> bool:
    seen = False
    for key, attr in (("feature_id", ATTR_FEATURE_ID), ("project_id", ATTR_PROJECT_ID)):
        value = found.get(key)
        if isinstance(value, str) and value:
            seen = True
            if attr not in known:
                span.set_attribute(attr, capped(value))
    return seen
