"""Input rules of the domain: text fields, names, ids, paths and phase results, each refusal coded.

Text must be storable as UTF-8 JSON (no lone surrogates); phase results must be strict JSON
(no NaN or infinities) within :data:`MAX_RESULTS_DEPTH` levels and :data:`MAX_RESULTS_BYTES`.

Length is checked first, before any hashing, parsing, normalisation or path resolution, so an
over-long input (10 MB) costs a ``len()`` and is refused with E005; its error quotes at most
:data:`~cde_otel._exceptions.QUOTE_CHARS` characters of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from cde_otel._exceptions import ProjectError, ValidationError, quote
from cde_otel.core._stack import on_fresh_stack

MAX_PROMPT_LENGTH = 100_000
MAX_NAME_LENGTH = 200
#: Phase results are bounded so one submission cannot make the state unloadable or huge:
#: nesting levels (the results mapping is level 1) and UTF-8 bytes of their JSON.
MAX_RESULTS_DEPTH = 100
MAX_RESULTS_BYTES = 1024 * 1024
#: Ids (a uuid4 hex is 32), phase and workflow names, and paths (Linux PATH_MAX) are never longer.
MAX_ID_LENGTH = 64
MAX_PHASE_LENGTH = 64
MAX_PATH_LENGTH = 4096
#: What a stored state may hold (checked on load and on save): looser than what a new submission may
#: add, so that states written by earlier versions keep loading.
MAX_STORED_RESULTS_DEPTH = 1000
MAX_STORED_RESULTS_BYTES = 4 * MAX_RESULTS_BYTES
#: Revisions name backups with 8 digits (``state-r00000012-...``): one more digit would hide them.
MAX_REVISION = 99_999_999


def too_long(value: str, *, what: str, max_length: int) -> ProjectError:
    return ProjectError(
        f"{what} is {len(value)} characters; at most {max_length} are allowed: {quote(value)}",
        "E005",
        {"field": what, "length": len(value), "max_length": max_length, "value": quote(value)},
    )


def bounded(value: object, *, what: str, max_length: int) -> object:
    """``value`` unchanged unless it is text over ``max_length`` characters (E005); checked before anything else."""
    if isinstance(value, str) and len(value) > max_length:
        raise too_long(value, what=what, max_length=max_length)
    return value


def checked_id(value: object, *, what: str = "feature_id") -> str:
    """An id as given: text (E305), at most :data:`MAX_ID_LENGTH` characters (E005), printable (E006)."""
    if not isinstance(value, str):
        raise ValidationError(
            f"{what} is text, not {type(value).__name__}", "E305", {"field": what, "type": type(value).__name__}
        )
    bounded(value, what=what, max_length=MAX_ID_LENGTH)
    if not value.isprintable():
        raise ProjectError(
            f"{what} contains a control character: {quote(value)}", "E006", {"field": what, "value": quote(value)}
        )
    return value


def checked_path_text(value: object, *, what: str = "project_path") -> str:
    """A path's text: at most :data:`MAX_PATH_LENGTH` characters (E005), no NUL or line break (E006).

    Checked before ``expanduser``/``resolve`` or any system call sees it.
    """
    text = value if isinstance(value, str) else str(value)
    bounded(text, what=what, max_length=MAX_PATH_LENGTH)
    if any(char in text for char in "\0\n\r"):
        raise ProjectError(
            f"{what} contains a NUL byte or a line break: {quote(text)}", "E006", {"field": what, "value": quote(text)}
        )
    return text


def validated_text(value: object, *, code: str, what: str, max_length: int) -> str:
    if isinstance(value, str) and len(value) > max_length:  # before strip(), which would copy it
        raise ValidationError(
            f"{what} is {len(value)} characters; at most {max_length} are allowed",
            code,
            {"field": what, "length": len(value), "max_length": max_length},
        )
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{what} must be non-empty text", code, {"field": what, "type": type(value).__name__})
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


def results_shape_problem(results: Mapping[str, Any], *, max_depth: int, max_bytes: int) -> str | None:
    """Why ``results`` is too deep or too large, or None; walks without recursing (it cannot overflow the stack).

    Every container and scalar takes at least one byte of JSON, and a string its length,
    so the walk stops after ``max_bytes`` units even on shared or cyclic structures.
    """
    budget = max_bytes
    pending: list[tuple[object, int]] = [(results, 1)]
    while pending:
        value, depth = pending.pop()
        budget -= len(value) if isinstance(value, str) else 1
        if budget < 0:
            return f"are larger than {max_bytes} bytes"
        if isinstance(value, Mapping):
            children: Iterable[object] = value.values()
            budget -= sum(len(key) if isinstance(key, str) else 1 for key in value)
        elif isinstance(value, list | tuple):
            children = value
        else:
            continue
        if depth > max_depth:
            return f"are nested deeper than {max_depth} levels (or contain themselves)"
        pending.extend((child, depth + 1) for child in children)
    return None


def _check_results_shape(results: Mapping[str, Any]) -> None:
    problem = results_shape_problem(results, max_depth=MAX_RESULTS_DEPTH, max_bytes=MAX_RESULTS_BYTES)
    if problem is not None:
        raise _refuse_results(problem, max_depth=MAX_RESULTS_DEPTH, max_bytes=MAX_RESULTS_BYTES)


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
