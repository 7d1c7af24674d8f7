"""Input rules of the domain: text fields, names and phase results, each refusal a coded ``ValidationError``.

Text must be storable as UTF-8 JSON (no lone surrogates); phase results must be strict JSON
(no NaN or infinities) within :data:`MAX_RESULTS_DEPTH` levels and :data:`MAX_RESULTS_BYTES`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from cde_otel._exceptions import ValidationError
from cde_otel.core._stack import on_fresh_stack

MAX_PROMPT_LENGTH = 100_000
MAX_NAME_LENGTH = 200
#: Phase results are bounded so one submission cannot make the state unloadable or huge:
#: nesting levels (the results mapping is level 1) and UTF-8 bytes of their JSON.
MAX_RESULTS_DEPTH = 100
MAX_RESULTS_BYTES = 1024 * 1024


def validated_text(value: object, *, code: str, what: str, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{what} must be non-empty text", code, {"field": what, "type": type(value).__name__})
    if len(value) > max_length:
        raise ValidationError(
            f"{what} is {len(value)} characters; at most {max_length} are allowed",
            code,
            {"field": what, "length": len(value), "max_length": max_length},
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate: valid in a Python str, not in UTF-8 or JSON text
        raise ValidationError(
            f"{what} is not valid Unicode text: {exc.reason} at position {exc.start}",
            code,
            {"field": what, "reason": f"{exc.reason} at position {exc.start}"},
        ) from None
    return value


def validate_name(name: object) -> str:
    """A project or feature name as given, or ``ValidationError`` E302 (not text, empty, too long)."""
    return validated_text(name, code="E302", what="name", max_length=MAX_NAME_LENGTH)


def _refuse_results(reason: str, **context: Any) -> ValidationError:
    return ValidationError(f"phase results {reason}", "E305", {"field": "results", "reason": reason, **context})


def _check_results_shape(results: Mapping[str, Any]) -> None:
    """Bounds nesting and size without recursing (so the check itself cannot overflow the stack).

    Every container and scalar takes at least one byte of JSON, and a string its length,
    so the walk stops after :data:`MAX_RESULTS_BYTES` units even on shared or cyclic structures.
    """
    budget = MAX_RESULTS_BYTES
    pending: list[tuple[object, int]] = [(results, 1)]
    while pending:
        value, depth = pending.pop()
        budget -= len(value) if isinstance(value, str) else 1
        if budget < 0:
            raise _refuse_results(f"are larger than {MAX_RESULTS_BYTES} bytes", max_bytes=MAX_RESULTS_BYTES)
        if isinstance(value, Mapping):
            children: Iterable[object] = value.values()
        elif isinstance(value, list | tuple):
            children = value
        else:
            continue
        if depth > MAX_RESULTS_DEPTH:
            raise _refuse_results(
                f"are nested deeper than {MAX_RESULTS_DEPTH} levels (or contain themselves)",
                max_depth=MAX_RESULTS_DEPTH,
            )
        pending.extend((child, depth + 1) for child in children)


def validated_results(results: object) -> dict[str, Any]:
    if results is None:
        return {}
    if not isinstance(results, Mapping):
        raise ValidationError(
            "phase results must be a mapping", "E305", {"field": "results", "type": type(results).__name__}
        )
    _check_results_shape(results)
    try:
        # Artifacts are persisted as strict JSON in UTF-8: refuse what cannot round-trip now, not at save time.
        text = on_fresh_stack(lambda: json.dumps(dict(results), ensure_ascii=False, allow_nan=False))
        size = len(text.encode("utf-8"))
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError (lone surrogates) is a ValueError
        raise _refuse_results(f"must be JSON-serialisable UTF-8 text ({exc})") from exc
    if size > MAX_RESULTS_BYTES:
        raise _refuse_results(f"are {size} bytes of JSON; at most {MAX_RESULTS_BYTES} are allowed", size=size)
    return dict(on_fresh_stack(lambda: json.loads(text)))
