"""Input rules of the domain: text fields, names and phase results, each refusal a coded ``ValidationError``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cde_otel._exceptions import ValidationError

MAX_PROMPT_LENGTH = 100_000
MAX_NAME_LENGTH = 200


def validated_text(value: object, *, code: str, what: str, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{what} must be non-empty text", code, {"field": what, "type": type(value).__name__})
    if len(value) > max_length:
        raise ValidationError(
            f"{what} is {len(value)} characters; at most {max_length} are allowed",
            code,
            {"field": what, "length": len(value), "max_length": max_length},
        )
    return value


def validate_name(name: object) -> str:
    """A project or feature name as given, or ``ValidationError`` E302 (not text, empty, too long)."""
    return validated_text(name, code="E302", what="name", max_length=MAX_NAME_LENGTH)


def validated_results(results: object) -> dict[str, Any]:
    if results is None:
        return {}
    if not isinstance(results, Mapping):
        raise ValidationError(
            "phase results must be a mapping", "E305", {"field": "results", "type": type(results).__name__}
        )
    try:
        # Artifacts are persisted as JSON; refuse what cannot round-trip now, not at save time.
        return dict(json.loads(json.dumps(dict(results))))
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            "phase results must be JSON-serialisable", "E305", {"field": "results", "reason": str(exc)}
        ) from exc
