"""What a span learns from the call it wraps, per role and method: small functions declared with the
targets (:mod:`._targets`), so the generic wrapper knows no method name.

An extractor is ``extract(policy, attrs, instance, args, kwargs)``: it adds to ``attrs`` (the span's
starting attributes) what ``self`` and the arguments say. Prompt text is recorded only when the
policy captures content; a requested phase that is not a phase is recorded as ``invalid``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from cde_otel.redaction import capture_text
from cde_otel.semconv import (
    ATTR_FEATURE_ID,
    ATTR_FEATURE_NEXT_PHASE,
    ATTR_FEATURE_PHASE,
    ATTR_PROJECT_ID,
    ATTR_PROMPT,
    ATTR_PROMPT_LENGTH,
    FEATURE_PHASES,
    INVALID_PHASE,
)


class ContentPolicy(Protocol):
    capture_content: bool
    capture_max_length: int


Extractor = Callable[[ContentPolicy, dict[str, Any], Any, tuple[Any, ...], Mapping[str, Any]], None]


def object_id(obj: Any) -> str | None:
    value = getattr(obj, "id", None)
    return None if value is None else str(value)


def is_feature(obj: Any) -> bool:
    return hasattr(obj, "current_phase") and hasattr(obj, "project_id")


def is_project(obj: Any) -> bool:
    return hasattr(obj, "features") and hasattr(obj, "id")


def project_attrs(policy: ContentPolicy, attrs: dict[str, Any], instance: Any, args: Any, kwargs: Any) -> None:
    """``self`` is a project: its id."""
    attrs[ATTR_PROJECT_ID] = object_id(instance)


def feature_attrs(policy: ContentPolicy, attrs: dict[str, Any], instance: Any, args: Any, kwargs: Any) -> None:
    """``self`` is a feature: its id, its project's and its phase."""
    attrs[ATTR_FEATURE_ID] = object_id(instance)
    attrs[ATTR_PROJECT_ID] = str(instance.project_id)
    attrs[ATTR_FEATURE_PHASE] = str(instance.current_phase)


def prompt_attrs(policy: ContentPolicy, attrs: dict[str, Any], instance: Any, args: Any, kwargs: Any) -> None:
    """``start_feature(prompt, ...)``: the prompt's length; its text only when content is captured."""
    prompt = args[0] if args else kwargs.get("prompt")
    if isinstance(prompt, str):
        attrs[ATTR_PROMPT_LENGTH] = len(prompt)
        if policy.capture_content:
            attrs[ATTR_PROMPT] = capture_text(prompt, policy.capture_max_length)  # scrubbed, then cut


def next_phase_attrs(policy: ContentPolicy, attrs: dict[str, Any], instance: Any, args: Any, kwargs: Any) -> None:
    """``advance_phase(next_phase, ...)``: user input, recorded only when it names a phase."""
    nxt = args[0] if args else kwargs.get("next_phase")
    if isinstance(nxt, str):
        attrs[ATTR_FEATURE_NEXT_PHASE] = nxt if nxt in FEATURE_PHASES else INVALID_PHASE


def _first_ids(attrs: dict[str, Any], candidates: Any) -> None:
    for candidate in candidates:
        if is_project(candidate):
            attrs[ATTR_PROJECT_ID] = object_id(candidate)
            return
        if is_feature(candidate):
            attrs[ATTR_FEATURE_ID] = object_id(candidate)
            attrs[ATTR_PROJECT_ID] = str(candidate.project_id)
            return


def stored_ids(policy: ContentPolicy, attrs: dict[str, Any], instance: Any, args: Any, kwargs: Any) -> None:
    """A store call: the ids of the first project or feature among its arguments."""
    if args or kwargs:
        _first_ids(attrs, (*args, *kwargs.values()))


def found_ids(policy: ContentPolicy, attrs: dict[str, Any], instance: Any, args: Any, kwargs: Any) -> None:
    """A user's target: the ids of ``self`` or of the first project or feature among its arguments."""
    _first_ids(attrs, (instance, *args))
